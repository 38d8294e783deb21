"""One replay shard: validates and stores trajectories, samples pairs or windows uniformly.

A plain class: the runtime places it in-process (LocalHandle) or as a Ray actor (RayHandle).
With the Redis backend every insert is written through to Redis before it is acknowledged, and a
new shard with the same config and shard_id recovers the same contents in the same order. An insert
whose trajectory uid is already stored is acknowledged without storing it again (a writer resends
what it could not confirm), and a stored blob that does not decode is set aside, counted and logged.
"""
from __future__ import annotations

import logging

import numpy as np

from pixelplan.envs.batches import BatchQuery, PairBatch, SequenceBatch
from pixelplan.envs.trajectory import Trajectory, TrajectoryError

from . import sampling
from .config import ReplayConfig
from .errors import ReplayEmptyError, ReplayStoreUnavailable
from .state_graph import StateGraph
from .storage import TrajectoryRing

log = logging.getLogger(__name__)


class ReplayShard:
    def __init__(self, config: ReplayConfig, shard_id: int) -> None:
        if not 0 <= shard_id < config.shards:
            raise ValueError(f"shard_id must be in [0, {config.shards}), got {shard_id}")
        self.config, self.shard_id = config, shard_id
        self._ring = TrajectoryRing(config.shard_capacity, config.shard_frame_slots)
        self._cum: dict[tuple, np.ndarray] = {}  # cumulative item counts per request shape
        self._ends: np.ndarray | None = None  # cumulative trajectory lengths: the step stream's boundaries
        self._counts = {"inserts": 0, "inserted_steps": 0, "samples": 0, "sample_calls": 0, "evictions": 0,
                        "duplicates": 0, "corrupt_skipped": 0}
        self._uids: dict[str, int] = {}  # uid -> seq of every stored trajectory that has one
        self._uid_of: dict[int, str] = {}  # seq -> uid, to forget evicted ones
        self._graph: StateGraph | None = None  # built on the first request for state pairs, then kept in step
        self._store = None
        self._store_in_doubt = False  # a write failed mid-flight: Redis may hold it, memory does not
        if config.backend == "redis":
            from .redis_store import RedisTrajectoryStore  # memory-only runs need no redis client

            # A run's shards (run_id set) never start its data: the coordinator did, so a missing marker means loss.
            self._store = RedisTrajectoryStore(config.redis_url, config.key_prefix, shard_id,
                                               create=config.run_id is None)
            self._recover()

    # -- writing ----------------------------------------------------------------------------------
    def insert(self, data: bytes | Trajectory) -> int:
        """Store one trajectory, evicting the oldest whole ones; returns transitions now stored.

        With the Redis backend the trajectory is in Redis when this returns (the acknowledgement).
        """
        return self.insert_batch([data])

    def insert_batch(self, items: list) -> int:
        """Store several trajectories in order, in one call (a writer pays a call's cost once per batch);
        returns transitions now stored. Every item is decoded and validated before any is stored, so a
        bad one refuses the whole batch and changes nothing; a resent batch's items that did land are
        recognised by uid. The acknowledgement covers every item, as ``insert`` does one."""
        if not isinstance(items, (list, tuple)) or not 1 <= len(items) <= self.config.max_insert_batch:
            size = len(items) if isinstance(items, (list, tuple)) else type(items).__name__
            raise ValueError(f"insert_batch takes a list of 1 to {self.config.max_insert_batch} trajectories "
                             f"(replay.max_insert_batch), got {size}")
        checked = [self._decode(data) for data in items]
        for traj, _ in checked:
            self._validate(traj, like=checked[0][0])
        for traj, blob in checked:
            self._store_one(traj, blob)
        return self._ring.transitions

    def _store_one(self, traj: Trajectory, blob: bytes | None) -> None:
        if self._store_in_doubt:
            self._recover()
        if traj.uid and traj.uid in self._uids:  # a resend of an insert that did land: acknowledge it again
            self._counts["duplicates"] += 1
            return
        evict = self._ring.evictions_for(len(traj))
        seq = self._counts["inserts"]
        if self._store is not None:
            try:
                self._store.write(seq, blob or traj.to_bytes(), len(traj), self._ring.seqs[:evict].tolist())
            except ReplayStoreUnavailable:
                self._store_in_doubt = True
                raise
        self._apply(traj, seq, evict)
        self._counts["inserts"] += 1
        self._counts["inserted_steps"] += len(traj)

    def _apply(self, traj: Trajectory, seq: int, evict: int) -> None:
        self._forget(self._ring.seqs[:evict])
        self._ring.evict(evict)
        self._ring.append(traj, seq)
        if self._graph is not None:
            self._graph.add(seq, traj.frames, traj.actions)
        if traj.uid:
            self._uids[traj.uid], self._uid_of[seq] = seq, traj.uid
        self._counts["evictions"] += evict
        self._invalidate()

    def _forget(self, seqs: np.ndarray) -> None:
        for seq in seqs.tolist():
            if self._graph is not None:
                self._graph.remove(seq)
            uid = self._uid_of.pop(seq, "")
            if self._uids.get(uid) == seq:
                del self._uids[uid]

    def _recover(self) -> None:
        """Rebuild memory from Redis (at start, or after a write whose outcome is unknown).

        Everything is read (compressed, small) before memory is touched, so an outage midway leaves
        the shard as it was and still in doubt. A blob that does not decode or fit is skipped, never
        half-applied: the shard holds exactly the good ones, and Redis sets the bad ones aside.
        """
        stored, counters = list(self._store.load()), self._store.counters()
        self._store_in_doubt = True  # until memory and Redis agree again (an outage below leaves it so)
        ring = self._ring
        ring.clear()
        self._graph = None  # rebuilt from what is recovered, on the next request for it
        self._uids.clear()
        self._uid_of.clear()
        bad = []
        for seq, blob in stored:
            try:
                traj = self._check_stored(blob)
            except (TrajectoryError, ValueError) as exc:
                log.warning("replay shard %d: skipping stored trajectory %d: %s", self.shard_id, seq, exc)
                bad.append(seq)
                continue
            evict = ring.evictions_for(len(traj))  # only if the capacity shrank since it was written
            self._store.evict(ring.seqs[:evict].tolist())
            self._apply(traj, seq, evict)
        self._invalidate()
        self._counts["inserts"] = counters.get("inserts", 0)
        self._counts["inserted_steps"] = counters.get("inserted_steps", 0)
        if bad:
            self._store.quarantine(bad)
            self._counts["corrupt_skipped"] += len(bad)
        self._store_in_doubt = False

    def _check_stored(self, blob: bytes | None) -> Trajectory:
        if blob is None:
            raise TrajectoryError("listed in the index but its blob is gone")
        traj = Trajectory.from_bytes(blob, self._byte_limit())
        self._validate(traj)
        return traj

    def _byte_limit(self) -> int:
        """Largest decompressed trajectory this shard could hold: from its schema once it has one."""
        return self._ring.max_trajectory_bytes() or self.config.max_trajectory_bytes

    def _decode(self, data: bytes | Trajectory) -> tuple[Trajectory, bytes | None]:
        if isinstance(data, Trajectory):
            data.validate()
            return data, None
        if isinstance(data, (bytes, bytearray, memoryview)):
            blob = bytes(data)
            return Trajectory.from_bytes(blob, self._byte_limit()), blob
        raise TypeError(f"insert takes a Trajectory or its to_bytes(), got {type(data).__name__}")

    def _validate(self, traj: Trajectory, like: Trajectory | None = None) -> None:
        self._ring.check(traj, like)
        if not np.all(np.isfinite(traj.rewards)):
            raise ValueError("trajectory rewards must be finite")
        n = self.config.num_actions
        if n is not None:
            if traj.actions.dtype != np.int64:
                raise ValueError(f"ReplayConfig.num_actions={n} is set but the actions are {traj.actions.dtype}, "
                                 "not discrete int64")
            if traj.actions.min() < 0 or traj.actions.max() >= n:
                raise ValueError(f"discrete actions must be in [0, {n}), got range "
                                 f"[{traj.actions.min()}, {traj.actions.max()}]")

    # -- reading ----------------------------------------------------------------------------------
    def num_transitions(self) -> int:
        return self._ring.transitions

    def count(self, request: BatchQuery) -> int:
        """Valid items for ``request``: pairs (i < j, j - i <= length) or windows of ``length`` steps."""
        self._check_request(request)
        return int(self._cumulative(request)[-1]) if len(self._ring) else 0

    def sample(self, request: BatchQuery, n: int, seed: int) -> PairBatch | SequenceBatch:
        """``n`` items drawn uniformly, with replacement, from this shard's valid items."""
        self._check_request(request)
        if n < 0:
            raise ValueError(f"n must be >= 0, got {n}")
        if not len(self._ring):
            raise ReplayEmptyError(f"replay shard {self.shard_id} is empty: insert trajectories before sampling")
        cum = self._cumulative(request)
        if cum[-1] == 0:
            raise ReplayEmptyError(
                f"replay shard {self.shard_id} has no valid {request.kind} of length {request.length} "
                f"(longest of its {len(self._ring)} trajectories: {self._ring.lengths.max()} transitions)")
        rng = np.random.default_rng(seed)
        k, rank = sampling.draw(cum, n, rng)
        if request.kind == "pairs":
            route = rng.random(n) < request.shortest_routes
            moved = route & (rng.random(n) < request.graph_starts) if request.graph_starts else np.zeros(n, bool)
            state = route & ~moved & (rng.random(n) < request.state_pairs) \
                if request.state_pairs and self._state_graph().can_draw() else np.zeros(n, bool)
            batch = self._pairs(k, rank, request.length, route, moved, state, rng)
        else:
            batch = self._windows(k, rank, request.length, request.cross_episodes)
        self._counts["samples"] += n
        self._counts["sample_calls"] += 1
        return batch

    def _pairs(self, k: np.ndarray, rank: np.ndarray, max_len: int, route: np.ndarray, moved: np.ndarray,
               state: np.ndarray, rng: np.random.Generator) -> PairBatch:
        """Pairs (i, j) of trajectories k; where ``route``, the shortest route replaces the walk's actions;
        where ``moved`` (routed pairs only), the start is another frame of the batch's graph (_graph_starts);
        where ``state`` (routed pairs only), start and goal are drawn from the shard's StateGraph."""
        ring = self._ring
        i, j = sampling.pair_from_rank(ring.lengths[k], max_len, rank)
        obs = ring.stacked(k, sampling.stack_offsets(i, ring.schema["stack"]))
        goals = ring.frames[ring.slots(k, j)]
        steps = np.minimum(i[:, None] + np.arange(max_len), j[:, None] - 1)  # stay inside the trajectory
        actions = ring.actions[ring.slots(k[:, None], steps)]
        walk_lengths = j - i
        walk = sampling.pair_actions(actions, walk_lengths, self.config.num_actions)
        if not route.any():
            return PairBatch(obs=obs, goals=goals, actions=walk, lengths=walk_lengths)  # the walk is the batch
        # One graph of every transition the batch's trajectories made within max_len of each pair,
        # walked or not (a random walk crosses an open room by a staircase, another walk went straight):
        # frames lo..hi with lo = j - max_len, hi = i + max_len: as j > i, at most 2 max_len per pair.
        lo = np.maximum(j - max_len, 0)
        hi = np.minimum(i + max_len, ring.lengths[k])
        span = np.minimum(lo[:, None] + np.arange(2 * max_len), hi[:, None])  # steps; hi repeated after the end
        keys = self._frame_keys(k, span)
        span_actions = ring.actions[ring.slots(k[:, None], np.minimum(span[:, :-1], hi[:, None] - 1))]
        moves = sampling.transition_graph(keys, span_actions, hi - lo)
        lengths = walk_lengths.copy()
        for b in np.flatnonzero(route & ~moved & ~state):
            path = sampling.shortest_route(moves, keys[b, i[b] - lo[b]], keys[b, j[b] - lo[b]])
            lengths[b] = len(path)
            actions[b, :len(path)] = path
        if moved.any():
            self._graph_starts(np.flatnonzero(moved), k, lo, hi - lo, keys[np.arange(len(k)), j - lo], keys,
                               span_actions, moves, max_len, rng, obs, actions, lengths, walk, walk_lengths)
        if state.any():
            self._state_pairs(np.flatnonzero(state), max_len, rng, obs, goals, actions, lengths, walk, walk_lengths)
        return PairBatch(obs=obs, goals=goals, actions=sampling.pair_actions(actions, lengths, self.config.num_actions),
                         lengths=lengths, walk_actions=walk, walk_lengths=walk_lengths)

    def _state_pairs(self, rows: np.ndarray, max_len: int, rng: np.random.Generator, obs: np.ndarray,
                     goals: np.ndarray, actions: np.ndarray, lengths: np.ndarray, walk: np.ndarray,
                     walk_lengths: np.ndarray) -> None:
        """In place: each of ``rows`` becomes a pair of the shard's StateGraph, its goal uniform over the
        distinct frames held, with the route as its actions. The prior's walk is what the data did next
        from the start's latest visit, as long as the row's own walk where that trajectory lasts."""
        ring, live = self._ring, self._ring.seqs
        for b, pair in zip(rows.tolist(), self._state_graph().pairs(len(rows), max_len, rng)):
            (start_seq, t), (goal_seq, f) = pair.start, pair.goal
            start_k, goal_k = np.searchsorted(live, [start_seq, goal_seq])
            obs[b] = ring.frames[ring.slots(start_k, t)]
            goals[b] = ring.frames[ring.slots(goal_k, f)]
            lengths[b] = len(pair.route)
            actions[b, :len(pair.route)] = pair.route
            walk_lengths[b] = min(walk_lengths[b], ring.lengths[start_k] - t)
            self._write_walk(walk, b, ring.actions[ring.slots(start_k, t + np.arange(walk_lengths[b]))])

    def _graph_starts(self, rows: np.ndarray, k: np.ndarray, lo: np.ndarray, span_len: np.ndarray,
                      goal_keys: np.ndarray, keys: np.ndarray, span_actions: np.ndarray, moves: dict,
                      max_len: int, rng: np.random.Generator, obs: np.ndarray, actions: np.ndarray,
                      lengths: np.ndarray, walk: np.ndarray, walk_lengths: np.ndarray) -> None:
        """Hindsight relabeling across trajectories, in place: each of ``rows`` starts from a frame drawn
        uniformly among the graph's frames with a route of at most max_len actions to its goal, and gets
        that route. A pair's own start only ever meets the goals its trajectory went on to, so a cell few
        walks pass on their way to a far room (beside a door) rarely meets those rooms' goals. The prior's
        walk is one the data made from the new start: a random visit's next steps, as long as the pair's
        own walk where the trajectory lasts."""
        back = sampling.reverse_graph(moves)
        has_next = np.arange(keys.shape[1] - 1)[None] < span_len[:, None]  # visits the graph has a step from
        visit_row, visit_t = np.nonzero(has_next)
        order = np.argsort(keys[visit_row, visit_t], kind="stable")
        visit_keys = keys[visit_row, visit_t][order]
        visit_row, visit_t = visit_row[order], visit_t[order]
        for b in rows:
            hops = sampling.routes_to(back, int(goal_keys[b]), max_len)
            start = list(hops)[rng.integers(len(hops))]  # never empty: the pair's own walk reaches the goal
            path = sampling.follow(hops, start, int(goal_keys[b]))
            first, last = np.searchsorted(visit_keys, [start, start + 1])
            v = rng.integers(first, last)
            row, t = visit_row[v], visit_t[v]
            obs[b] = self._ring.frames[self._ring.slots(k[row], lo[row] + t)]
            lengths[b] = len(path)
            actions[b, :len(path)] = path
            walk_lengths[b] = min(walk_lengths[b], span_len[row] - t)
            self._write_walk(walk, b, span_actions[row, t:t + walk_lengths[b]])

    def _write_walk(self, walk: np.ndarray, b: int, actions: np.ndarray) -> None:
        """Row b of a token array becomes ``actions``, END, then PAD (the prior's walk of a moved pair)."""
        walk[b] = sampling.pad_token(self.config.num_actions)
        walk[b, :len(actions)] = actions
        walk[b, len(actions)] = sampling.end_token(self.config.num_actions)

    def _state_graph(self) -> StateGraph:
        """The shard's StateGraph, built from every stored trajectory at the first call, then kept in step
        by _apply and _forget (shards that never draw state pairs pay nothing)."""
        if self._graph is None:
            ring, self._graph = self._ring, StateGraph()
            for index, seq in enumerate(ring.seqs.tolist()):
                steps = np.arange(ring.lengths[index] + 1)
                self._graph.add(seq, ring.frames[ring.slots(np.array(index), steps)],
                                ring.actions[ring.slots(np.array(index), steps[:-1])])
        return self._graph

    def _frame_keys(self, k: np.ndarray, steps: np.ndarray) -> np.ndarray:
        """One integer per distinct frame at (trajectory k, step) over the whole batch: equal keys, equal frames."""
        frames = self._ring.frames[self._ring.slots(k[:, None], steps)]
        rows = np.ascontiguousarray(frames.reshape(steps.size, -1))
        as_bytes = rows.view(np.dtype((np.void, rows.shape[1] * rows.dtype.itemsize))).ravel()
        return np.unique(as_bytes, return_inverse=True)[1].reshape(steps.shape)

    def _windows(self, k: np.ndarray, rank: np.ndarray, length: int, cross: bool) -> SequenceBatch:
        ring = self._ring
        ends = self._cumulative_lengths()
        start = rank if cross else ends[k] - ring.lengths[k] + rank  # position in this shard's step stream
        pos = start[:, None] + np.arange(length)
        traj = np.searchsorted(ends, pos, side="right")
        step = pos - (ends[traj] - ring.lengths[traj])
        frame_traj = np.concatenate([traj, traj[:, -1:]], axis=1)
        frame = np.concatenate([step, step[:, -1:] + 1], axis=1)  # obs[L] follows the last action
        slots = ring.slots(traj, step)
        return SequenceBatch(
            obs=ring.stacked(frame_traj, sampling.stack_offsets(frame, ring.schema["stack"])),
            actions=ring.actions[slots], rewards=ring.rewards[slots], terminals=ring.terminals[slots],
            is_first=np.concatenate([step == 0, np.zeros((len(k), 1), bool)], axis=1),
        )

    def _check_request(self, request: BatchQuery) -> None:
        if request.kind not in ("pairs", "windows"):
            raise ValueError(f"request.kind must be 'pairs' or 'windows', got {request.kind!r}")
        if request.length < 1:
            raise ValueError(f"request.length must be >= 1, got {request.length}")
        if not 0.0 <= request.shortest_routes <= 1.0:
            raise ValueError(f"request.shortest_routes is a share of the pairs, in [0, 1]; got {request.shortest_routes}")
        for name in ("graph_starts", "state_pairs"):
            share = getattr(request, name)
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"request.{name} is a share of the routed pairs, in [0, 1]; got {share}")
            if share and not request.shortest_routes:
                raise ValueError(f"{name} is a share of the routed pairs: it needs shortest_routes > 0")
        if request.kind == "pairs":
            if request.cross_episodes:
                raise ValueError("pairs never cross episodes: cross_episodes applies to windows only")
            if self.config.num_actions is None:
                raise ValueError("pair sampling needs ReplayConfig.num_actions (END = n, PAD = n + 1)")
            if request.shortest_routes and self._ring.schema is not None and self._ring.schema["stack"] != 1:
                raise ValueError("shortest-route pairs need frames that are the whole state (stack 1); this replay "
                                 f"stacks {self._ring.schema['stack']} frames")
        elif request.shortest_routes:
            raise ValueError("shortest_routes applies to pairs only")

    def _cumulative(self, request: BatchQuery) -> np.ndarray:
        key = (request.kind, request.length, request.cross_episodes)
        if key not in self._cum:
            lengths = self._ring.lengths
            if request.kind == "pairs":
                counts = sampling.pair_counts(lengths, request.length)
            elif request.cross_episodes:
                counts = sampling.window_counts(np.array([self._ring.transitions]), request.length)
            else:
                counts = sampling.window_counts(lengths, request.length)
            self._cum[key] = np.cumsum(counts) if len(counts) else np.zeros(1, np.int64)
        return self._cum[key]

    def _cumulative_lengths(self) -> np.ndarray:
        if self._ends is None:
            self._ends = np.cumsum(self._ring.lengths)
        return self._ends

    def _invalidate(self) -> None:
        self._cum.clear()
        self._ends = None

    # -- reporting --------------------------------------------------------------------------------
    def trajectory_ids(self) -> list[str]:
        """uids of the stored trajectories, oldest first (the fault tests check identity with them)."""
        return [self._uid_of.get(seq, "") for seq in self._ring.seqs.tolist()]

    def stats(self) -> dict[str, float]:
        return {
            "replay/transitions": float(self._ring.transitions),
            "replay/trajectories": float(len(self._ring)),
            "replay/capacity": float(self._ring.capacity),
            "replay/bytes": float(self._ring.nbytes()),
            **{f"replay/{name}": float(value) for name, value in self._counts.items()},
        }

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
