"""ctstudy: the application shell that wires registry, imaging, biomarkers, prognosis and dashboard."""

__version__ = "0.1.0"
