"""The rate substrate: K batched multilayer perceptrons (`network`), their training loop around
the learning step (`train`) and their observer adapter (`observer`)."""

from lrsim.models.rate.network import ACTIVATIONS, LOSSES, Forward, RateNetwork, loss_and_error
from lrsim.models.rate.train import TrainContext, TrainResult, train

__all__ = ["ACTIVATIONS", "LOSSES", "Forward", "RateNetwork", "TrainContext", "TrainResult",
           "loss_and_error", "train"]
