"""DICOMweb (QIDO-RS, WADO-RS, STOW-RS) served by the built-in archive."""
