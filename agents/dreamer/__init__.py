"""Dreamer (Hafner et al., 2020): behaviours learned by backpropagating lambda-returns through imagination."""
from .agent import DreamerAgent
from .config import DreamerConfig

__all__ = ["DreamerAgent", "DreamerConfig"]
