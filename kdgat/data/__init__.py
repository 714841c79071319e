"""CAN data: log formats, the dataset catalogue, the synthetic bus, windows → graphs."""
