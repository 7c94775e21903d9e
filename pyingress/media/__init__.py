"""Media pipeline: timeline, decode, layer plan, scale, encode or pass-through."""
