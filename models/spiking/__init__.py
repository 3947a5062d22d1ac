"""Balanced E/I spiking networks in Brian2, driven by the rule registry (see `network`,
`learning`, `run`)."""
