"""Saving and loading: the safetensors format (no pickle, atomic writes, hostile-file checks)."""

from retrograd.io.safetensors import FormatError, load_file, read_header, save_file
from retrograd.io.serialization import load, save
