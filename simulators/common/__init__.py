"""The ground floor: value types and readers with no knowledge of DICOM, HL7 or pacsim.

Durations and rates as users write them, the one line-marking YAML reader (scenarios,
site files, actor configs and ingestion rules all report ``file:line: field``), and a
JSON fallback for reports. Nothing here imports anything of pacsim, so every layer may
use it.
"""
