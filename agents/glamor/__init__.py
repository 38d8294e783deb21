"""GLAMOR (Paster et al. 2021): goal-conditioned inverse dynamics + action prior, random-shooting planner."""
from .agent import GlamorAgent
from .collect import EpsilonSchedule, OpenLoopFollower
from .config import GlamorConfig

__all__ = ["EpsilonSchedule", "GlamorAgent", "GlamorConfig", "OpenLoopFollower"]
