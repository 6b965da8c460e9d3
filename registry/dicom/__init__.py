"""DICOM from the network: the storage SCP centers send to, pulls from a PACS, and the spool both feed.

Every route (C-STORE, C-MOVE/C-GET, dashboard upload) writes files durably into the spool
(`registry.dicom.spool`); the spool hands each finished batch to `registry.ingest.directory.ingest_directory`,
the one per-file judgement, de-identification and QC of the registry.
"""
