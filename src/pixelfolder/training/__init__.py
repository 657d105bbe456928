"""Training: losses now; the loop, phases and run directory come with the training issue."""
