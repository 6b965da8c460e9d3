"""Quality control: automatic series QC, header validation, the review queue, the burned-in annotation recheck."""
