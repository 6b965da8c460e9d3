"""Clinical and outcome tables: reading CSV and .xlsx, validating rows, importing them, the per-patient table."""
