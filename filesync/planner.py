"""The pure planning step: listings + stored state -> decisions and actions.

Nothing here touches a location. When two entries can only be told apart by their
content, the plan asks for their hashes (``Plan.hash_requests``); the caller computes them
and plans again. The same plan is what ``--dry-run`` prints.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import Enum

from filesync.gcpause import gc_paused
from filesync.model import Agreed, Entry, Listing, PathState, Record, parents_of
from filesync.renames import Move, find_moves


class Op(Enum):
    """What an action does; the value is the order actions run in (deletions first)."""

    DELETE = 0
    RENAME = 1
    RMDIR = 2
    MKDIR = 3
    COPY = 4


@dataclass(frozen=True, slots=True)
class Action:
    """One change at one location.

    ``expect`` is what the plan assumed the target holds now; the executor re-checks it
    before acting, so a file changed in the meantime is never clobbered. A ``RENAME``
    moves the target's own file from ``from_path`` (holding ``source_entry``) to ``path``.
    """

    op: Op
    path: str
    target: str
    expect: Entry | None
    source: str | None = None
    source_entry: Entry | None = None
    conflict: bool = False
    from_path: str | None = None
    #: For a rename: the moved file is the agreed content (not edited meanwhile there), so
    #: the target counts as holding it. An edited one is looked at again (a new change).
    keeps_record: bool = True

    def sort_key(self) -> tuple[int, int, str]:
        """Deletions, then folders removed deepest first, folders made, then copies."""
        depth = self.path.count("/")
        return (self.op.value, -depth if self.op is Op.RMDIR else depth, self.path)


@dataclass(slots=True)
class Decision:
    """What one path becomes: what is agreed next, who holds it already, and the actions."""

    path: str
    agreed: Agreed
    holders: dict[str, Record]
    actions: list[Action]
    forget: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    winner: str | None = None


@dataclass
class Plan:
    """Decisions for every path that needs one, plus what could not be decided yet."""

    decisions: list[Decision] = field(default_factory=list)
    hash_requests: set[tuple[str, str]] = field(default_factory=set)
    problems: list[str] = field(default_factory=list)
    #: (location, path) pairs left out because the location cannot hold the name.
    unholdable: set[tuple[str, str]] = field(default_factory=set)
    #: Paths left in conflict (``--conflict manual``) and their entry in ``problems``
    #: (reported, but no error: the user resolves them).
    unresolved: dict[str, str] = field(default_factory=dict)
    #: The paths looked at one by one; every other path in scope was in sync as recorded.
    looked_at: set[str] = field(default_factory=set)

    def empty(self) -> bool:
        """True when the plan has nothing to do, to ask or to report."""
        return not (self.decisions or self.hash_requests or self.problems or self.unholdable
                    or self.unresolved)

    def actions(self) -> list[Action]:
        """All actions of the plan, in the order they must run."""
        return sorted((a for d in self.decisions for a in d.actions), key=Action.sort_key)


@dataclass
class PlanInput:
    """Everything the planner looks at.

    ``order`` lists location keys by priority (ties go to the earlier one; with
    ``one_way`` the first is the source). A listing of ``None`` means the location is
    unavailable: nothing is concluded from it. ``paths`` limits planning to some paths
    (watch mode); ``None`` plans every path seen or stored.
    """

    order: Sequence[str]
    listings: Mapping[str, Listing | None]
    state: Mapping[str, PathState]
    tolerance_ns: Mapping[str, int]
    hashes: Mapping[tuple[str, str], str] = field(default_factory=dict)
    paths: Iterable[str] | None = None
    one_way: bool = False
    excluded: Callable[[str, bool], bool] | None = None
    #: ``newest`` (losers kept as versions), ``keep-both`` (and as visible copies), ``manual``.
    conflict_policy: str = "newest"
    #: Per location: why it cannot hold a name (``Location.name_problem``), None if it can.
    name_problems: Mapping[str, Callable[[str], str | None]] = field(default_factory=dict)
    #: ``--checksum``: files are equal when their SHA-256 are, whatever size+mtime say.
    checksum: bool = False


_CURRENT, _BEHIND, _CHANGED = "current", "behind", "changed"


def record_of(entry: Entry, gen: int) -> Record:
    """The record to store for a location that holds ``entry`` at generation ``gen``."""
    return Record(gen, entry.is_dir, entry.size, entry.mtime_ns)


def _matches(entry: Entry, record: Record, tolerance: int) -> bool:
    if entry.is_dir or record.is_dir:
        return entry.is_dir == record.is_dir
    return entry.size == record.size and abs(entry.mtime_ns - record.mtime_ns) <= tolerance


class _PathPlanner:
    """Plans one path; holds the per-path views so the helpers stay small."""

    def __init__(self, inputs: PlanInput, plan: Plan, path: str, state: PathState,
                 present: list[str], current: dict[str, Entry | None]) -> None:
        self.inputs = inputs
        self.plan = plan
        self.path = path
        self.state = state
        self.agreed = state.agreed
        self.gen = state.agreed.gen if state.agreed else 0
        self.present = present
        self.current = current
        self.status: dict[str, str] = {}
        self.stale: set[str] = set()
        self.pending = False

    def classify(self) -> None:
        agreed = self.agreed
        live = agreed is not None and not agreed.deleted
        for key in self.present:
            entry = self.current[key]
            record = self.state.records.get(key)
            if record is None:
                status = _CHANGED if entry is not None else (_BEHIND if live else _CURRENT)
            elif entry is None or not _matches(entry, record, self.inputs.tolerance_ns[key]):
                status = _CHANGED
            else:
                status = _CURRENT if record.gen == self.gen else _BEHIND
            self.status[key] = status
            if status == _CHANGED and (record is None or record.gen != self.gen):
                self.stale.add(key)
        if self.inputs.checksum:
            self._check_content()

    def _check_content(self) -> None:
        """``--checksum``: a file that looks unchanged but holds other content changed.

        The reference is the agreed content's hash, or (when none was ever taken) the
        first unchanged copy's, in the locations' order.
        """
        agreed = self.agreed
        reference = agreed.sha256 if agreed is not None and not agreed.deleted else None
        for key in self.present:
            entry = self.current[key]
            if self.status[key] != _CURRENT or entry is None or entry.is_dir or not entry.size:
                continue
            digest = self.inputs.hashes.get((key, self.path))
            if digest is None:
                self.plan.hash_requests.add((key, self.path))
                self.pending = True
            elif reference is None:
                reference = digest
            elif digest != reference:
                self.status[key] = _CHANGED

    # ----- content comparison -------------------------------------------------------------
    def _hash(self, key: str) -> str | None:
        known = self.inputs.hashes.get((key, self.path))
        if known is None and self.status.get(key) == _CURRENT and self.agreed is not None:
            known = self.agreed.sha256
        return known

    def _known_gen(self, key: str) -> int | None:
        """The generation ``key``'s entry is known to hold (it matches its record), or None."""
        status = self.status.get(key)
        if status == _CURRENT:
            return self.gen
        if status == _BEHIND:
            return self.state.records[key].gen if key in self.state.records else None
        return None

    def same(self, key_a: str, entry_a: Entry, key_b: str, entry_b: Entry) -> bool | None:
        """Equal content? ``None`` when only hashes can tell (they are then requested).

        Clocks alone never prove that a location holds newer content: an entry that still
        matches its record holds the generation recorded, whatever its time says (coarse
        ZIP and FTP clocks make an edit within a second look unchanged). Two entries are
        taken as equal without reading them only when both are known to hold the same
        generation, or both changed and carry the same size and exact mtime (the quick
        check of rsync); anything else is decided by SHA-256.
        """
        if entry_a.is_dir or entry_b.is_dir:
            return entry_a.is_dir == entry_b.is_dir
        if entry_a.size != entry_b.size:
            return False
        if entry_a.size == 0:
            return True
        gen_a, gen_b = self._known_gen(key_a), self._known_gen(key_b)
        if gen_a is not None and gen_a == gen_b:
            return True
        if (gen_a is None and gen_b is None and entry_a.mtime_ns == entry_b.mtime_ns
                and not self.inputs.checksum):
            return True
        hash_a, hash_b = self._hash(key_a), self._hash(key_b)
        if hash_a is not None and hash_b is not None:
            return hash_a == hash_b
        for key, digest in ((key_a, hash_a), (key_b, hash_b)):
            if digest is None:
                self.plan.hash_requests.add((key, self.path))
        self.pending = True
        return None

    # ----- building a decision ------------------------------------------------------------
    def _delete_actions(self, key: str) -> list[Action]:
        entry = self.current[key]
        if entry is None:
            return []
        return [Action(Op.RMDIR if entry.is_dir else Op.DELETE, self.path, key, entry)]

    def converge(self, winner_key: str | None, winner: Entry | None, gen: int,
                 conflicts: set[str]) -> Decision | None:
        """Make every present location hold ``winner`` (``None``: the path is deleted)."""
        holders: dict[str, Record] = {}
        actions: list[Action] = []
        forget: list[str] = []
        for key in self.present:
            entry = self.current[key]
            if winner is None:
                actions += self._delete_actions(key)
                if entry is None and key in self.state.records:
                    forget.append(key)
                continue
            if entry is not None and (key == winner_key or self.same(
                    winner_key or key, winner, key, entry)):
                holders[key] = record_of(entry, gen)
                continue
            if entry is not None and entry.is_dir != winner.is_dir:
                actions += self._delete_actions(key)
                entry = None  # the delete above runs first: the target is then empty
            op = Op.MKDIR if winner.is_dir else Op.COPY
            actions.append(Action(op, self.path, key, entry, winner_key, winner,
                                  conflict=key in conflicts and entry is not None))
        if self.pending:
            return None
        if winner is None:
            agreed = Agreed(gen, True, self.agreed.is_dir if self.agreed else False)
        else:
            sha = self.inputs.hashes.get((winner_key or "", self.path)) if winner_key else None
            if sha is None and self.agreed is not None and gen == self.gen:
                sha = self.agreed.sha256
            agreed = Agreed(gen, False, winner.is_dir, winner.size, winner.mtime_ns, sha)
        unchanged = (not actions and not forget and gen == self.gen
                     and all(self.state.records.get(k) == r for k, r in holders.items())
                     and (self.agreed is None or sha == self.agreed.sha256
                          or not self.inputs.checksum))
        if unchanged:
            return None
        return Decision(self.path, agreed, holders, actions, forget,
                        sorted(conflicts, key=self.inputs.order.index), winner_key)

    def _unresolved(self, problem: str) -> None:
        self.plan.unresolved[self.path] = problem
        self.plan.problems.append(problem)

    def leave_conflict(self, winner: Entry, losers: set[str], winner_key: str) -> Decision:
        """``--conflict manual``: touch nothing, remember each copy, report until resolved.

        Recording every copy as it is now means the next change a user makes to any one of
        them is the only change, and so resolves the conflict.
        """
        names = ", ".join(sorted({winner_key, *losers}, key=self.inputs.order.index))
        self._unresolved(f"conflict {self.path}: changed to different content in {names}; "
                         "left alone everywhere until you change (or delete) one of the copies")
        gen = self.gen + 1
        holders = {k: record_of(e, gen) for k in self.present
                   if (e := self.current[k]) is not None}
        forget = [k for k in self.present
                  if self.current[k] is None and k in self.state.records]
        agreed = Agreed(gen, False, winner.is_dir, winner.size, winner.mtime_ns, conflict=True)
        return Decision(self.path, agreed, holders, [], forget, [], winner_key)

    def _remember_hash(self, holder: str | None) -> Decision | None:
        """``--checksum`` found the agreed content's hash unknown: record it (no action)."""
        entry = self.current.get(holder) if holder is not None else None
        if (not self.inputs.checksum or holder is None or entry is None or entry.is_dir
                or self.agreed is None or self.agreed.sha256 is not None
                or (holder, self.path) not in self.inputs.hashes):
            return None
        return self.converge(holder, entry, self.gen, set())

    def decide_two_way(self) -> Decision | None:
        changed = [k for k in self.present if self.status[k] == _CHANGED]
        holder = next((k for k in self.present if self.status[k] == _CURRENT), None)
        if not changed and self.agreed is not None and self.agreed.conflict:
            self._unresolved(f"conflict {self.path}: still unresolved; change (or delete) one "
                             "of the copies")
            return None
        if not changed:
            if all(self.status[k] == _CURRENT for k in self.present):
                return self._remember_hash(holder)
            if self.agreed is None or self.agreed.deleted:
                return self.converge(None, None, self.gen, set())
            if holder is None or self.current[holder] is None:
                return None  # every location holding the agreed content is out of reach
            return self.converge(holder, self.current[holder], self.gen, set())
        candidates = [k for k in changed if self.current[k] is not None]
        if (self.stale and holder is not None and self.current[holder] is not None
                and holder not in candidates):
            # A location that missed the agreed content changed its older copy: the agreed
            # content counts as a concurrent edit, so the newest still wins.
            candidates.append(holder)
        if not candidates:
            return self.converge(None, None, self.gen + 1, set())
        kinds = {self.current[k].is_dir for k in candidates}  # type: ignore[union-attr]
        if len(kinds) > 1:
            where = ", ".join(
                f"{'a folder' if self.current[k].is_dir else 'a file'} in {k}"  # type: ignore[union-attr]
                for k in candidates)
            self.plan.problems.append(
                f"{self.path!r} is {where}; rename one of them so both can be kept")
            return None
        order = self.inputs.order
        winner_key = max(candidates, key=lambda k: (self.current[k].mtime_ns,  # type: ignore[union-attr]
                                                    -order.index(k)))
        winner = self.current[winner_key]
        assert winner is not None
        losers: set[str] = set()
        for key in candidates:
            if key == winner_key:
                continue
            verdict = self.same(winner_key, winner, key, self.current[key])  # type: ignore[arg-type]
            if verdict is False:
                losers.add(key)
        if self.pending:
            return None
        if losers and self.inputs.conflict_policy == "manual":
            return self.leave_conflict(winner, losers, winner_key)
        return self.converge(winner_key, winner, self.gen + 1, losers)

    def decide_one_way(self) -> Decision | None:
        source = self.inputs.order[0]
        if source not in self.present:
            return None  # never derive anything from a source we cannot see
        entry = self.current[source]
        gen = self.gen if self.status[source] == _CURRENT else self.gen + 1
        if entry is None:
            return self.converge(None, None, gen, set())
        losers = {k for k in self.present
                  if k != source and self.status[k] == _CHANGED and self.current[k] is not None}
        return self.converge(source, entry, gen, losers)


def plan(inputs: PlanInput) -> Plan:
    """Decide, for every path in scope, what each available location must become."""
    with gc_paused():  # a first round makes an object or more per path: filesync.gcpause
        return _plan(inputs)


def _plan(inputs: PlanInput) -> Plan:
    result = Plan()
    available = [k for k in inputs.order if inputs.listings.get(k) is not None]
    if len(available) < 2 or (inputs.one_way and inputs.order[0] not in available):
        return result
    listings = {k: inputs.listings[k] for k in available}
    if inputs.paths is None:
        paths: set[str] = set(inputs.state)
        for key in available:
            paths.update(listings[key].entries)  # type: ignore[union-attr]
    else:
        paths = set(inputs.paths)
    excluded = inputs.excluded
    empty = PathState()
    moved: set[str] = set()
    for move in _moves(inputs, listings, paths):  # type: ignore[arg-type]
        decisions = _plan_move(inputs, listings, move)  # type: ignore[arg-type]
        if decisions:
            result.decisions += decisions
            moved.update((move.old, move.new))
    unmoved = paths - moved if moved else paths
    # --checksum reads every file: no path counts as in sync without being read.
    remaining = unmoved if inputs.checksum else _not_in_sync(inputs, listings, unmoved)
    result.looked_at = moved.union(remaining)
    for path in sorted(remaining):
        state = inputs.state.get(path, empty)
        present = [k for k in available if listings[k].sees(path)]  # type: ignore[union-attr]
        if len(present) < 2:
            continue
        current = {k: listings[k].entries.get(path) for k in present}  # type: ignore[union-attr]
        if excluded is not None:
            sample = next((e for e in current.values() if e is not None), None)
            is_dir = sample.is_dir if sample else bool(state.agreed and state.agreed.is_dir)
            if excluded(path, is_dir):
                continue
        if not inputs.checksum and _in_sync(state, present, current, inputs.tolerance_ns):
            continue
        present = _holdable(inputs, result, path, present, current)
        if len(present) < 2:
            continue
        planner = _PathPlanner(inputs, result, path, state, present, current)
        planner.classify()
        if planner.pending:
            continue  # --checksum: decided once the hashes it asked for are known
        decision = planner.decide_one_way() if inputs.one_way else planner.decide_two_way()
        if decision is not None:
            result.decisions.append(decision)
    _keep_needed_folders(result, listings)
    return result


def _moves(inputs: PlanInput, listings: Mapping[str, Listing], paths: set[str]) -> list[Move]:
    """The moves to replay elsewhere (with ``one_way``: only the source's)."""
    moves = find_moves(list(listings), listings, paths, inputs.state)
    if inputs.one_way:
        moves = [move for move in moves if move.where == inputs.order[0]]
    if inputs.excluded is not None:
        moves = [move for move in moves if not inputs.excluded(move.old, False)
                 and not inputs.excluded(move.new, False)]
    return moves


def _plan_move(inputs: PlanInput, listings: Mapping[str, Listing],
               move: Move) -> list[Decision] | None:
    """Rename the file in every other location (None: not clean, plan it path by path).

    A location whose copy was edited meanwhile renames it too, so the edit ends under the
    new name; it then counts as changed there and the next round settles who wins.
    """
    old_state = inputs.state[move.old]
    agreed = old_state.agreed
    assert agreed is not None
    moved = listings[move.where].entries[move.new]
    new_state = inputs.state.get(move.new)
    gen = (new_state.agreed.gen if new_state is not None and new_state.agreed else 0) + 1
    actions: list[Action] = []
    for key, listing in listings.items():
        if key == move.where or not (listing.sees(move.old) and listing.sees(move.new)):
            continue
        check = inputs.name_problems.get(key)
        at_old = listing.entries.get(move.old)
        if listing.entries.get(move.new) is not None or (check and check(move.new)):
            return None
        if at_old is None:
            actions.append(Action(Op.COPY, move.new, key, None, move.where, moved))
            continue
        if at_old.is_dir:
            return None
        record = old_state.records.get(key)
        unchanged = (record is not None and record.gen == agreed.gen
                     and _matches(at_old, record, inputs.tolerance_ns[key]))
        actions.append(Action(Op.RENAME, move.new, key, None, None, at_old,
                              from_path=move.old, keeps_record=unchanged))
    new = Decision(move.new, Agreed(gen, False, False, moved.size, moved.mtime_ns,
                                    agreed.sha256),
                   {move.where: record_of(moved, gen)}, actions)
    # Records of the old path go where it is gone now; a renamer forgets its own on success.
    forget = [key for key, listing in listings.items()
              if key in old_state.records and listing.sees(move.old)
              and move.old not in listing.entries]
    old = Decision(move.old, Agreed(agreed.gen + 1, True, False), {}, [], forget)
    return [new, old]


def _holdable(inputs: PlanInput, result: Plan, path: str, present: list[str],
              current: Mapping[str, Entry | None]) -> list[str]:
    """Leave out the locations that lack ``path`` and cannot hold its name; report them.

    Such a location is blind for the path: nothing is written there, and its absence
    there is never read as a deletion.
    """
    kept = []
    for key in present:
        check = inputs.name_problems.get(key)
        problem = check(path) if check is not None and current[key] is None else None
        if problem is None:
            kept.append(key)
        else:
            result.problems.append(f"{path!r} cannot be stored in {key}: {problem}; it is "
                                   "left out there (nothing is deleted because of it)")
            result.unholdable.add((key, path))
    return kept


def _not_in_sync(inputs: PlanInput, listings: Mapping[str, Listing | None],
                 paths: set[str]) -> Iterable[str]:
    """``paths`` less those every listing shows exactly as recorded (the no-op fast path).

    ``_in_sync``, inlined where no listing is blind: a no-op round of 100,000 paths builds
    no per-path lists. A path in sync needs no decision, excluded or not.
    """
    if any(listing is None or listing.blind for listing in listings.values()):
        return paths
    sides = [(listing.entries.get, key, inputs.tolerance_ns[key])  # type: ignore[union-attr]
             for key, listing in listings.items()]
    state_of = inputs.state.get
    left: list[str] = []
    for path in paths:
        state = state_of(path)
        agreed = state.agreed if state is not None else None
        if agreed is None or agreed.deleted or agreed.conflict:
            left.append(path)
            continue
        records, gen = state.records, agreed.gen  # type: ignore[union-attr]
        for entry_at, key, tolerance in sides:
            # ``_matches``, with the call to abs() only for times that differ at all.
            entry, record = entry_at(path), records.get(key)
            if (entry is None or record is None or record.gen != gen
                    or entry.is_dir != record.is_dir):
                break
            if not entry.is_dir and (
                    entry.size != record.size or (entry.mtime_ns != record.mtime_ns and abs(
                        entry.mtime_ns - record.mtime_ns) > tolerance)):
                break
        else:
            continue
        left.append(path)
    return left


def _in_sync(state: PathState, present: list[str], current: Mapping[str, Entry | None],
             tolerance: Mapping[str, int]) -> bool:
    """The hot path of a no-op round: every location still holds the agreed content."""
    agreed = state.agreed
    if agreed is None or agreed.deleted or agreed.conflict:
        return False
    records = state.records
    for key in present:
        entry = current[key]
        record = records.get(key)
        if (entry is None or record is None or record.gen != agreed.gen
                or not _matches(entry, record, tolerance[key])):
            return False
    return True


def _keep_needed_folders(result: Plan, listings: Mapping[str, Listing | None]) -> None:
    """Cancel removing a folder that will still hold something (an edit beats a delete).

    Such a folder is kept everywhere instead: it is created again where it was deleted.
    """
    removals = [(d, a) for d in result.decisions for a in d.actions if a.op is Op.RMDIR]
    if not removals:
        return
    survivors: dict[str, set[str]] = {}
    deleted = {(a.target, a.path) for d in result.decisions for a in d.actions
               if a.op in (Op.DELETE, Op.RMDIR)}
    deleted.update((a.target, a.from_path) for d in result.decisions for a in d.actions
                   if a.op is Op.RENAME and a.from_path is not None)
    for key, listing in listings.items():
        if listing is None:
            continue
        folders = survivors.setdefault(key, set())
        for path in listing.entries:
            if (key, path) not in deleted:
                folders.update(parents_of(path))
    for decision in result.decisions:
        for action in decision.actions:
            if action.op in (Op.COPY, Op.MKDIR, Op.RENAME):
                survivors.setdefault(action.target, set()).update(parents_of(action.path))
    kept: set[str] = set()
    for decision, action in removals:
        if action.path in survivors.get(action.target, set()):
            kept.add(decision.path)
    for decision in result.decisions:
        if decision.path not in kept:
            continue
        gen = decision.agreed.gen
        decision.actions = [a for a in decision.actions if a.op is not Op.RMDIR]
        decision.agreed = Agreed(gen, False, True)
        decision.forget = []
        for key, listing in listings.items():
            entry = listing.entries.get(decision.path) if listing else None
            if entry is not None and entry.is_dir:
                decision.holders[key] = Record(gen, True)
            elif listing is not None and listing.sees(decision.path):
                decision.actions.append(Action(Op.MKDIR, decision.path, key, entry, None,
                                               Entry(decision.path, True)))
