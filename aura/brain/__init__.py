"""Layer 1: the brain daemon, its task tree, planners and evidence checks."""
