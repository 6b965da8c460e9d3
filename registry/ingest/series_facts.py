"""The Series columns a series' files decide: acquisition facts of its first file, geometry from the automatic
checks' summary of all of them, and where its files lie. Pure: headers and a summary in, column values out."""

from __future__ import annotations

from pathlib import Path

from registry.dicom_headers import InstanceHeader
from registry.qc.series_qc import SeriesSummary


def series_facts(first: InstanceHeader, everyone: list[InstanceHeader], summary: SeriesSummary,
                 series_dir: Path) -> dict[str, object]:
    """{Series column: value} of a series whose files are `everyone` (`first` the one its facts come from)."""
    acquisitions = [h.acquisition_datetime for h in everyone if h.acquisition_datetime]
    return {
        "series_number": first.series_number, "description": first.series_description,
        "image_type": first.image_type,
        "acquisition_datetime": min(acquisitions) if acquisitions else first.study_datetime,
        "manufacturer": first.manufacturer, "manufacturer_model": first.manufacturer_model,
        "convolution_kernel": first.convolution_kernel, "rows": summary.rows, "columns": summary.columns,
        "pixel_spacing_row": summary.pixel_spacing_row, "pixel_spacing_col": summary.pixel_spacing_col,
        "slice_thickness": summary.slice_thickness, "slice_spacing": summary.slice_spacing,
        "image_orientation": summary.image_orientation, "gantry_tilt": summary.gantry_tilt,
        "instance_count": summary.instance_count, "z_positions": summary.z_positions,
        "coverage_mm": summary.coverage_mm, "archive_path": str(series_dir),
    }
