"""dicom subpackage."""
