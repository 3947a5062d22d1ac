"""Substrates a rule drives (batched rate networks, balanced spiking networks) and tasks."""
