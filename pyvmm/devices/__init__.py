"""Host-side backends that hypercalls reach (console, and later block, channels, clock)."""
