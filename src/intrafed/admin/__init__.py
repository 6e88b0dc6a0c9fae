"""Administration across nodes: moving users between the partitions."""
