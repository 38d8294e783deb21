"""Grid worlds from ASCII maps: pixel observations with exactly known shortest paths.

Map syntax: '#' wall, '.' floor, 'S' start (optional: default is the centre cell); lines starting
with '#' followed by a space are comments. The image has one ``cell_px`` square per map cell:
floor 0, wall 128, agent 255. With ``reward_cell`` set the world is also a reward task (reward 1
and termination on entering that cell): a cheap pixel task for reward-driven agents.
"""
from __future__ import annotations

from collections import deque
from pathlib import Path

import numpy as np

from .base import PixelEnv
from .spec import EnvSpec

EMPTY_7X7 = "\n".join(["#########"] + ["#.......#"] * 7 + ["#########"])
MAPS_DIR = Path(__file__).parent / "data"
# Every map file in data/ is a named layout: grid:four-rooms, grid:maze, grid:comb.
NAMED_MAPS = {"": EMPTY_7X7, "empty": EMPTY_7X7, **{p.stem: p.read_text() for p in sorted(MAPS_DIR.glob("*.txt"))}}
MOVES = np.array([(-1, 0), (1, 0), (0, -1), (0, 1)])  # up, down, left, right
WALL, FLOOR, AGENT = 128, 0, 255


def parse_map(text: str) -> tuple[np.ndarray, tuple[int, int] | None]:
    """Return (wall mask, start cell or None) of an ASCII map."""
    rows = [r.rstrip() for r in text.splitlines() if r.strip() and not r.startswith("# ")]
    if not rows:
        raise ValueError("grid map is empty")
    width = max(len(r) for r in rows)
    walls = np.ones((len(rows), width), bool)
    start = None
    for i, row in enumerate(rows):
        for j, ch in enumerate(row):
            if ch not in "#.S":
                raise ValueError(f"grid map: unknown character {ch!r} at row {i}, column {j} (use '#', '.', 'S')")
            walls[i, j] = ch == "#"
            if ch == "S":
                start = (i, j)
    if walls.all():
        raise ValueError("grid map has no floor cell")
    return walls, start


def resolve_map(name: str) -> str:
    """``''``/``empty``/a map in data/ (``four-rooms``, ``maze``, ``comb``) or a path to a map file, or a literal map string."""
    if name in NAMED_MAPS:
        return NAMED_MAPS[name]
    if "\n" in name:
        return name
    path = Path(name).expanduser()
    if not path.is_file():
        raise ValueError(f"unknown grid map {name!r}: not one of {sorted(k for k in NAMED_MAPS if k)} nor a file")
    return path.read_text()


class GridWorld(PixelEnv):
    def __init__(self, layout: str = "", time_limit: int | None = None, cell_px: int = 1,
                 env_id: str = "grid", reward_cell: tuple[int, int] | None = None) -> None:
        self.walls, start = parse_map(resolve_map(layout))
        if reward_cell is not None:
            reward_cell = tuple(int(v) for v in reward_cell)
            inside = all(0 <= v < n for v, n in zip(reward_cell, self.walls.shape))
            if len(reward_cell) != 2 or not inside or self.walls[reward_cell]:
                raise ValueError(f"reward_cell {reward_cell} must be a floor cell (row, col) of the map")
        self.reward_cell = reward_cell
        free = np.argwhere(~self.walls)
        if start is None:
            centre = np.array(self.walls.shape) // 2
            start = tuple(free[np.abs(free - centre).sum(1).argmin()])
        self.start = start
        self.cell_px = cell_px
        self._dist_cache: dict[tuple[int, int], np.ndarray] = {}
        longest = int(self.distances(start)[~self.walls].max())
        h, w = self.walls.shape
        self.spec = EnvSpec(
            env_id=env_id, frame_shape=(1, h * cell_px, w * cell_px), stack=1, action_kind="discrete",
            action_size=4, time_limit=time_limit or max(20, 3 * longest), feature_names=("row", "col"),
        )
        self._base = np.where(self.walls, WALL, FLOOR).astype(np.uint8)
        self.pos = start
        super().__init__()

    def distances(self, source: tuple[int, int]) -> np.ndarray:
        """BFS step counts from ``source`` to every cell (-1 where unreachable)."""
        if source not in self._dist_cache:
            dist = np.full(self.walls.shape, -1, np.int64)
            dist[source] = 0
            queue = deque([source])
            while queue:
                cell = queue.popleft()
                for move in MOVES:
                    nxt = (cell[0] + move[0], cell[1] + move[1])
                    if not self.walls[nxt] and dist[nxt] < 0:
                        dist[nxt] = dist[cell] + 1
                        queue.append(nxt)
            self._dist_cache[source] = dist
        return self._dist_cache[source]

    def shortest_path_length(self, goal_features: np.ndarray, source: tuple[int, int] | None = None) -> int:
        row, col = (int(round(v)) for v in goal_features)
        return int(self.distances(source or self.start)[row, col])

    def render_at(self, pos: tuple[int, int]) -> np.ndarray:
        img = self._base.copy()
        img[pos] = AGENT
        return np.kron(img, np.ones((self.cell_px, self.cell_px), np.uint8))[None]

    def _reset(self, seed: int | None) -> np.ndarray:
        self.pos = self.start
        return self.render_at(self.pos)

    def _step(self, action: int) -> tuple[np.ndarray, float, bool]:
        nxt = (self.pos[0] + MOVES[action][0], self.pos[1] + MOVES[action][1])
        if not self.walls[nxt]:
            self.pos = nxt
        reached = self.pos == self.reward_cell
        return self.render_at(self.pos), float(reached), reached

    def goal_features(self) -> np.ndarray:
        return np.array(self.pos, np.float64)

    def known_feature_ranges(self) -> np.ndarray:
        free = np.argwhere(~self.walls)
        return (free.max(0) - free.min(0)).astype(np.float64)
