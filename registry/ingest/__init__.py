"""Ingest of a folder of DICOM files: reading and grouping, rejections, archive copies, storing each series."""
