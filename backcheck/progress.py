"""What the main job is doing, as it does it: one updating line in a terminal, plain lines in a
CI log. Shown by the process that reports (serial pytest, or the xdist controller), never by an
xdist worker.

    backcheck 14 s · reference programs 4/6, compiling perturbed d8·w16·n32·k4 · builtin: test 37/129 · 0 failed

The line is written to a duplicate of the terminal's file descriptor taken before any test
runs, so a redraw from the timer thread while a test holds pytest's output capture reaches the
terminal, not the test's captured output. In a log (not a terminal, or $CI set), a line is
written when a program starts compiling, when all are ready, at the first failure, every tenth
of the tests (or every 30 s), at the first result and at the end.

Program events come from reference.programs.listen() in this process, or, under xdist, from
the workers through an events file (`EventsFile`): one "<event>\\t<label>" line each.
"""
from __future__ import annotations

import os
import shutil
import threading
import time

PLAIN_EVERY_S = 30.0


def label(key) -> str:
    """A program's name for people: gradient d8·w16·n32 (·k4 for a maxout bucket)."""
    name, *rest = key
    b = rest[0] if rest else None
    if b is None or not hasattr(b, "depth"):
        return str(name)
    size = f"d{b.depth}·w{b.width}·n{b.batch}" + (f"·k{b.pieces}" if b.pieces > 1 else "")
    return f"{name} {size}"


class EventsFile:
    """Program events written by xdist workers and read by the controller (append-only lines)."""

    def __init__(self, path: str):
        self.path, self._offset = path, 0

    def write(self, event: str, text: str) -> None:
        try:
            with open(self.path, "a") as f:   # one short line per write: appends do not interleave
                f.write(f"{event}\t{text}\n")
        except OSError:
            pass

    def read_new(self) -> list[tuple[str, str]]:
        try:
            with open(self.path) as f:
                f.seek(self._offset)
                data = f.read()
        except OSError:
            return []
        complete = data[:data.rfind("\n") + 1]
        self._offset += len(complete.encode())
        return [tuple(line.split("\t", 1)) for line in complete.splitlines() if "\t" in line]


class Progress:
    """The display: activate() it, feed it program() events ("planned" with a count, "compiling",
    "ready" with a program's label), collected(), test_done(), then finish()."""

    def __init__(self, fd: int, line_mode: bool, impls=(), width: int | None = None, clock=time.monotonic):
        self.fd, self.line_mode, self.clock, self.impls = fd, line_mode, clock, tuple(impls)
        self.width = width or shutil.get_terminal_size((100, 20)).columns
        self.start = clock()
        self._lock = threading.RLock()
        self.planned_programs = 0
        self.ready: set = set()
        self.compiling: dict = {}     # label -> when it started
        self._compiled: set = set()   # by name: xdist workers report alike, and one the other loaded is not two
        self.tests_total = 0
        self.tests_done = 0
        self.failed: list[str] = []
        self.current = ""             # the implementation of the test that last finished
        self._last_plain = (0.0, 0)   # (time, tests done) of the last plain progress line
        self._programs_announced = False
        self._finished = False
        self._timer = None
        self.active = False           # nothing is shown until activate()
        self.on_activate = None       # e.g. quieting pytest's own dots in line mode

    def activate(self) -> None:
        with self._lock:
            if self.active:
                return
            self.active = True
            if self.on_activate is not None:
                self.on_activate()
        self._draw()

    @property
    def compiled(self) -> int:
        """Reference programs compiled (by any process of the run), not loaded."""
        return len(self._compiled)

    # --- input ---------------------------------------------------------------------------
    def program(self, event: str, name: str) -> None:
        with self._lock:
            if event == "planned":
                self.planned_programs = max(self.planned_programs, int(name))
            elif event == "compiling":
                self.compiling[name] = self.clock()
                if len(self.ready) < self.planned_programs:   # the suite's programs, planned ahead
                    where = f"{len(self.ready)} of {self.planned_programs} ready"
                else:                                          # one a test needs beyond them
                    where = f"one more, after {len(self.ready)}"
                self._plain(f"compiling reference program {name} ({where}; a few seconds each, once per machine)")
            elif event == "ready":
                if self.compiling.pop(name, None) is not None:
                    self._compiled.add(name)
                self.ready.add(name)
                if (self.planned_programs and len(self.ready) >= self.planned_programs and self.compiled
                        and not self._programs_announced):
                    self._programs_announced = True
                    self._plain(f"reference programs ready: {len(self.ready)} ({self.compiled} compiled, "
                                f"{len(self.ready) - self.compiled} from the cache) after {self.elapsed():.0f} s")
        self._draw()

    def collected(self, n: int) -> None:
        with self._lock:
            self.tests_total = max(self.tests_total, n)
        self._draw()

    def test_done(self, nodeid: str, failed: bool) -> None:
        with self._lock:
            self.tests_done += 1
            impl = impl_of(nodeid, self.impls)
            if impl:
                self.current = impl
            if failed:
                self.failed.append(nodeid)
                if len(self.failed) == 1:
                    self._plain(f"first failure: {nodeid}")
            t, done = self._last_plain
            tenth = max(10, self.tests_total // 10)
            if self.tests_done == 1 or self.tests_done // tenth > done // tenth or self.clock() - t >= PLAIN_EVERY_S:
                self._plain(self._tests_text())
                self._last_plain = (self.clock(), self.tests_done)
        self._draw()

    # --- output --------------------------------------------------------------------------
    def elapsed(self) -> float:
        return self.clock() - self.start

    def _tests_text(self) -> str:
        who = f"{self.current}: " if self.current else ""
        total = f"/{self.tests_total}" if self.tests_total else ""
        return f"{who}test {self.tests_done}{total} · {len(self.failed)} failed · {self.elapsed():.0f} s"

    def text(self) -> str:
        with self._lock:
            parts = [f"backcheck {self.elapsed():.0f} s"]
            if self.planned_programs and len(self.ready) < self.planned_programs:
                part = f"reference programs {len(self.ready)}/{self.planned_programs}"
                if self.compiling:
                    name = min(self.compiling, key=self.compiling.get)
                    part += f", compiling {name} ({self.clock() - self.compiling[name]:.0f} s)"
                parts.append(part)
            who = f"{self.current}: " if self.current else ""
            total = f"/{self.tests_total}" if self.tests_total else ""
            parts.append(f"{who}test {self.tests_done}{total}")
            parts.append(f"{len(self.failed)} failed")
            return " · ".join(parts)

    def _write(self, s: str) -> None:
        try:
            os.write(self.fd, s.encode("utf-8", "replace"))
        except OSError:
            pass

    def _draw(self) -> None:
        if not self.line_mode or self._finished or not self.active:
            return
        with self._lock:
            self._write("\r\x1b[2K" + self.text()[:max(20, self.width - 1)])

    def _plain(self, text: str) -> None:
        if not self.line_mode and not self._finished and self.active:
            self._write(f"backcheck: {text}\n")

    def start_timer(self, every: float = 0.5, poll=None) -> None:
        """Redraw (and call poll(), e.g. reading an events file) every `every` s until finish()."""
        def run():
            while not self._finished:
                if poll is not None:
                    poll()
                self._draw()
                time.sleep(every)
        self._timer = threading.Thread(target=run, name="backcheck-progress", daemon=True)
        self._timer.start()

    def finish(self) -> None:
        """The last line: what was run and how long it took (the line mode's line cleared first)."""
        with self._lock:
            if self._finished:
                return
            text = f"{self.tests_done} tests, {len(self.failed)} failed, {self.elapsed():.1f} s"
            if self.planned_programs:
                text += f" (reference programs: {self.compiled} compiled, {len(self.ready) - self.compiled} from the cache)"
            self._write(("\r\x1b[2K" if self.line_mode else "") + f"backcheck: {text}\n")
            self._finished = True


def impl_of(nodeid: str, impls) -> str:
    """Which of `impls` (the --impl sources, the `impl` parameter's ids) a test ran on."""
    params = nodeid[nodeid.find("[") + 1:] if "[" in nodeid else ""
    found = [s for s in impls if params == s + "]" or params.startswith(s + "-")]
    return max(found, key=len) if found else ""
