"""actors subpackage."""
