"""NAS-Bench-101 without TensorFlow: cell spec and hash, enumeration, official-file reader and cache."""
