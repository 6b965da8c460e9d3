"""Collection progress per center, what each still owes, and the collection targets."""
