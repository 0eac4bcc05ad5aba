"""Load generators that drive spikewatch from outside, over loopback, from their own process."""
