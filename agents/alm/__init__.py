"""Aligned Latent Models (Ghugare et al., 2023): one lower bound trains encoder, latent model and policy."""
from .agent import AlmAgent
from .config import AlmConfig

__all__ = ["AlmAgent", "AlmConfig"]
