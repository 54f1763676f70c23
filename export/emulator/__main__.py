"""`python -m espdl_stream.export.emulator`: print the supported-ops table for the README."""

from . import supported_ops_table

print(supported_ops_table())
