"""Where moto's CloudFormation differs from AWS in a way the product's code path would notice.

moto 5.2 builds a stack's outputs when the stack object is made; a stack made by a CREATE change set
is made (REVIEW_IN_PROGRESS) before its template is known, and executing the change set never
rebuilds them, so `describe_stacks` answers no Outputs, where AWS answers them. `scripts/stack deploy`
prints the outputs and the local run reads them, so the stand-in rebuilds them after a CREATE change
set executes. This is the stand-in's one patch of moto's code; tests/test_stack_moto.py fails if moto
changes underneath it (the patch then raises, naming this file).
"""

from __future__ import annotations

_PATCHED = "_mlops_outputs_patch"


def patch_change_set_outputs() -> None:
    """Make moto's execute_change_set rebuild the stack's outputs, as AWS has them (idempotent)."""
    from moto.cloudformation.models import CloudFormationBackend

    original = CloudFormationBackend.execute_change_set
    if getattr(original, _PATCHED, False):
        return

    def execute_change_set(self, change_set_name, stack_name=None):
        original(self, change_set_name, stack_name)
        try:
            for stack in self.stacks.values():
                if stack.name == stack_name or stack.stack_id == stack_name:
                    stack._parse_template()
                    stack.output_map = stack._create_output_map()
        except AttributeError as exc:
            raise RuntimeError(f"moto's CloudFormation internals changed ({exc}): see standin/moto_fixes.py"
                               ) from None

    setattr(execute_change_set, _PATCHED, True)
    CloudFormationBackend.execute_change_set = execute_change_set
