"""The podcast connector (Listen Notes): its operations and surfaces."""
