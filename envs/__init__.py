"""Pixel environments with private goal features. Imports no other part of pixelplan."""
from .base import PixelEnv, Step
from .evaluation import EvalResult, Film, GoalPolicy, RandomGoalPolicy, evaluate
from .goals import GoalSet, achieved, build_goal_set, measure_feature_ranges
from .gym_adapter import register_all as _register_gym
from .registry import make_env, parse_env_id
from .spec import EnvSpec
from .trajectory import Trajectory, TrajectoryBuilder, TrajectoryError

_register_gym()

__all__ = ["EnvSpec", "EvalResult", "Film", "GoalPolicy", "GoalSet", "PixelEnv", "RandomGoalPolicy", "Step", "Trajectory",
           "TrajectoryBuilder", "TrajectoryError", "achieved", "build_goal_set", "evaluate", "make_env",
           "measure_feature_ranges", "parse_env_id"]
