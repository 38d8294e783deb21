"""pixelplan: distributed actor-learner model-based RL from pixels (GLAMOR, ALM, Dreamer)."""

__version__ = "0.1.0"
