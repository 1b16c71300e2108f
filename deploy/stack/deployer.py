"""Plan, apply and destroy the stack through change sets, waiting on CloudFormation's states.

    plan     the stack's state decides: none -> a CREATE change set; stable -> UPDATE (parameters not
             given keep their previous values); an operation in progress -> StackBusy (14); a state
             that cannot be updated (ROLLBACK_COMPLETE, *_FAILED) -> StackFailed (15). An empty change
             set is deleted and reported as NoChanges (16).
    execute  runs a planned (reviewed) change set and waits: CREATE/UPDATE_COMPLETE -> the outputs;
             rolled back by CloudFormation -> RolloutFailed (12, with the first failure's reason);
             the rollback failed too -> RollbackFailed (13). SIGTERM or Ctrl-C during an update
             cancels it (CloudFormation rolls it back) and is reported as 12.
    destroy  refuses while the store bucket holds model versions (Refused, 8) unless forced; forced,
             it empties the bucket first (every object version), then deletes the stack and waits.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from deploy.errors import (
    DeployError,
    InvalidInput,
    NoChanges,
    Refused,
    RollbackFailed,
    RolloutFailed,
    StackBusy,
    StackFailed,
)
from deploy.rollout.core import Terminated, signals_raise

CAPABILITIES = ["CAPABILITY_NAMED_IAM"]
UNUPDATABLE = {"ROLLBACK_COMPLETE", "ROLLBACK_FAILED", "CREATE_FAILED", "DELETE_FAILED",
               "UPDATE_ROLLBACK_FAILED", "IMPORT_ROLLBACK_FAILED"}
SUCCEEDED = {"CREATE_COMPLETE", "UPDATE_COMPLETE", "IMPORT_COMPLETE"}
ROLLED_BACK = {"ROLLBACK_COMPLETE", "UPDATE_ROLLBACK_COMPLETE", "IMPORT_ROLLBACK_COMPLETE"}
_EMPTY_REASONS = ("didn't contain changes", "No updates are to be performed")


@dataclass(frozen=True)
class Change:
    """One row of a change set."""

    action: str  # Add, Modify, Remove, Import, Dynamic
    logical_id: str
    resource_type: str
    replacement: str  # True, False, Conditional, or "" (not a Modify)

    @classmethod
    def from_api(cls, change: dict) -> Change:
        resource = change.get("ResourceChange", {})
        return cls(resource.get("Action", "?"), resource.get("LogicalResourceId", "?"),
                   resource.get("ResourceType", "?"), str(resource.get("Replacement", "") or ""))


@dataclass
class Plan:
    """A change set that was made and not executed yet."""

    stack: str
    change_set: str
    kind: str  # CREATE or UPDATE
    changes: list[Change] = field(default_factory=list)
    parameters: dict[str, str] = field(default_factory=dict)

    def describe(self) -> list[str]:
        """The change set as a table for a build log or a terminal."""
        replaced = sum(1 for c in self.changes if c.replacement == "True")
        lines = [f"change set {self.change_set} of stack {self.stack} ({self.kind}): "
                 f"{len(self.changes)} change(s), {replaced} replacement(s)"]
        rows = [("action", "resource", "type", "replacement")] + [
            (c.action, c.logical_id, c.resource_type, c.replacement or "-") for c in self.changes]
        widths = [max(len(row[i]) for row in rows) for i in range(4)]
        lines += ["  " + "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
                  for row in rows]
        return lines

    def to_json(self) -> dict:
        return {"stack": self.stack, "change_set": self.change_set, "kind": self.kind,
                "parameters": self.parameters,
                "changes": [c.__dict__ for c in self.changes]}


class Stacks:
    """The state machine over a CloudFormation client (deploy.stack.cloudformation.CloudFormation)."""

    def __init__(self, cfn, *, log: Callable[[str], None] = print,
                 clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
                 poll: float = 5.0, templates=None):
        self.cfn, self.log, self.clock, self.sleep, self.poll = cfn, log, clock, sleep, poll
        # Where a template over CloudFormation's inline limit goes (deploy/stack/templates.py).
        self.templates = templates

    # -- plan ------------------------------------------------------------------------------
    def _template_source(self, stack: str, body: str) -> dict:
        from deploy.stack.templates import BODY_LIMIT

        if self.templates is not None:
            return self.templates.source(stack, body)
        if len(body.encode()) > BODY_LIMIT:
            raise InvalidInput(f"the template is {len(body.encode()):,} bytes, over CloudFormation's "
                               f"{BODY_LIMIT:,} for an inline template, and no templates bucket was given")
        return {"TemplateBody": body}

    def plan(self, stack: str, template_body: str, parameters: dict[str, str], *, change_set: str,
             timeout: float = 300.0) -> Plan:
        """Make a change set (see the module docstring); NoChanges if it would change nothing."""
        current = self.cfn.stack(stack)
        status = current["StackStatus"] if current else None
        if status and status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
            raise StackBusy(f"stack {stack} is {status}: another operation is in progress; wait for it")
        if status in UNUPDATABLE:
            hint = ("its creation failed and was rolled back: delete it (scripts/stack destroy) and deploy "
                    "again" if status == "ROLLBACK_COMPLETE" else "fix it in the CloudFormation console "
                    "(continue the rollback or delete it) and deploy again")
            raise StackFailed(f"stack {stack} is {status}: {hint}")
        kind = "UPDATE" if status and status != "REVIEW_IN_PROGRESS" else "CREATE"
        source = self._template_source(stack, template_body)
        try:
            self.cfn.create_change_set(StackName=stack, ChangeSetName=change_set, ChangeSetType=kind,
                                       **source, Capabilities=CAPABILITIES,
                                       Parameters=self._parameters(current if kind == "UPDATE" else None,
                                                                   parameters),
                                       Description="scripts/stack plan")
        except DeployError as exc:  # some endpoints refuse an empty change set up front
            if any(text in str(exc) for text in _EMPTY_REASONS):
                raise NoChanges(f"stack {stack} already matches the template and parameters: no changes"
                                ) from None
            raise
        answer = self._wait_for_change_set(stack, change_set, timeout)
        if answer.get("Status") == "FAILED":
            reason = answer.get("StatusReason", "no reason given")
            self.cfn.delete_change_set(stack, change_set)
            if any(text in reason for text in _EMPTY_REASONS):
                raise NoChanges(f"stack {stack} already matches the template and parameters: no changes")
            raise StackFailed(f"change set for stack {stack} failed: {reason}")
        return Plan(stack, change_set, kind, [Change.from_api(c) for c in answer.get("Changes", [])],
                    dict(parameters))

    def _parameters(self, current: dict | None, given: dict[str, str]) -> list[dict]:
        """Given values, and for an update every other parameter's previous value (not the default)."""
        listed = [{"ParameterKey": k, "ParameterValue": v} for k, v in sorted(given.items())]
        for previous in (current or {}).get("Parameters", []):
            if previous["ParameterKey"] not in given:
                listed.append({"ParameterKey": previous["ParameterKey"], "UsePreviousValue": True})
        return listed

    def _wait_for_change_set(self, stack: str, name: str, timeout: float) -> dict:
        deadline = self.clock() + timeout
        while True:
            answer = self.cfn.change_set(stack, name)
            if answer.get("Status") in ("CREATE_COMPLETE", "FAILED"):
                return answer
            if self.clock() >= deadline:
                raise StackBusy(f"change set {name} still {answer.get('Status')} after {timeout:g}s")
            self.sleep(self.poll)

    def discard(self, plan: Plan) -> None:
        """Delete an unexecuted change set (and the empty stack a CREATE change set leaves behind)."""
        self.cfn.delete_change_set(plan.stack, plan.change_set)
        current = self.cfn.stack(plan.stack)
        if plan.kind == "CREATE" and current and current["StackStatus"] == "REVIEW_IN_PROGRESS":
            self.cfn.delete_stack(plan.stack)

    # -- execute ---------------------------------------------------------------------------
    def execute(self, stack: str, change_set: str, *, timeout: float = 3600.0) -> dict[str, str]:
        """Execute a change set and wait; the stack's outputs once it succeeded."""
        answer = self.cfn.change_set(stack, change_set)
        if answer.get("ExecutionStatus") != "AVAILABLE":
            why = answer.get("StatusReason") or "no reason"
            raise StackFailed(f"change set {change_set} of {stack} cannot be executed: "
                              f"{answer.get('ExecutionStatus')} ({why})")
        before = self.cfn.stack(stack)
        updating = before is not None and before["StackStatus"] != "REVIEW_IN_PROGRESS"
        self.cfn.execute_change_set(stack, change_set)
        self.log(f"executing change set {change_set} on stack {stack}")
        try:
            with signals_raise():
                final = self._wait_for_stack(stack, timeout)
        except (KeyboardInterrupt, Terminated):
            if not updating:
                raise RolloutFailed(f"interrupted while stack {stack} is being created: CloudFormation goes "
                                    "on; if it fails it rolls back (then scripts/stack destroy)") from None
            self.log(f"interrupted: cancelling the update of {stack} (CloudFormation rolls it back)")
            self.cfn.cancel_update(stack)
            final = self._wait_for_stack(stack, timeout)
            raise RolloutFailed("interrupted: the update was cancelled and the stack is "
                                f"{final['StackStatus']}") from None
        status = final["StackStatus"]
        if status in SUCCEEDED:
            self.log(f"stack {stack} is {status}")
            return {o["OutputKey"]: o["OutputValue"] for o in final.get("Outputs", [])}
        reason = self._first_failure(stack)
        if status in ROLLED_BACK:
            extra = "; delete it before deploying again" if status == "ROLLBACK_COMPLETE" else ""
            raise RolloutFailed(f"stack {stack} failed and CloudFormation rolled it back ({status}){extra}: "
                                f"{reason}")
        raise RollbackFailed(f"stack {stack} is {status}: {reason}")

    def _wait_for_stack(self, stack: str, timeout: float) -> dict:
        deadline = self.clock() + timeout
        last = None
        while True:
            current = self.cfn.stack(stack)
            if current is None:
                return {"StackStatus": "DELETE_COMPLETE"}
            status = current["StackStatus"]
            if not status.endswith("_IN_PROGRESS"):
                return current
            if status != last:
                self.log(f"waiting: stack {stack} is {status}")
                last = status
            if self.clock() >= deadline:
                raise StackBusy(f"stack {stack} is still {status} after {timeout:g}s; CloudFormation goes on")
            self.sleep(self.poll)

    def _first_failure(self, stack: str) -> str:
        try:
            events = self.cfn.events(stack)
        except DeployError:
            return "no events readable"
        failed = [e for e in events if e.get("ResourceStatus", "").endswith("_FAILED")]
        if not failed:
            return "no failed resource reported"
        first = failed[-1]  # events are newest first
        return f"{first.get('LogicalResourceId')}: {first.get('ResourceStatusReason', 'no reason')}"

    # -- destroy ---------------------------------------------------------------------------
    def destroy(self, stack: str, *, store, force: bool, timeout: float = 3600.0) -> None:
        """Delete the stack; `store` has `count()` and `empty()` for the model bucket (or is None)."""
        current = self.cfn.stack(stack)
        if current is None:
            self.log(f"stack {stack} does not exist: nothing to destroy")
            return
        status = current["StackStatus"]
        if status.endswith("_IN_PROGRESS") and status != "REVIEW_IN_PROGRESS":
            raise StackBusy(f"stack {stack} is {status}: another operation is in progress; wait for it")
        if store is not None:
            versions = store.count()
            if versions and not force:
                raise Refused(f"the model store {store.uri} holds {versions} model version(s): they would be "
                              "deleted with the stack; pass --force to delete them too")
            removed = store.empty()
            if removed:
                self.log(f"emptied the model bucket: {removed} object version(s) deleted")
        self.cfn.delete_stack(stack)
        self.log(f"deleting stack {stack}")
        final = self._wait_for_stack(stack, timeout)
        if final["StackStatus"] != "DELETE_COMPLETE":
            raise StackFailed(f"stack {stack} is {final['StackStatus']}: {self._first_failure(stack)}")
        self.log(f"stack {stack} deleted")
