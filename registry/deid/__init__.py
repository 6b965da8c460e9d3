"""De-identification: the PS3.15 profile, de-identified copies and headers, pseudonyms, cleaned names and text."""
