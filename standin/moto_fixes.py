"""Where moto's CloudFormation differs from AWS in a way the product's code path would notice.

moto 5.2 builds a stack's outputs when the stack object is made; a stack made by a CREATE change set
is made (REVIEW_IN_PROGRESS) before its template is known, and executing the change set never
rebuilds them, so `describe_stacks` answers no Outputs, where AWS answers them. `scripts/stack deploy`
prints the outputs and the local run reads them, so the stand-in rebuilds them after a CREATE change
set executes.

moto 5.2 also checks whether an UPDATE change set changes anything before it reads a TemplateURL, so
a template sent through S3 (deploy/stack/templates.py: the stack is over the inline limit) never
counts as unchanged, where AWS answers "no changes". The second patch reads the URL first.

These are the stand-in's patches of moto's code; tests/test_stack_moto.py fails if moto changes
underneath them (a patch then raises, naming this file).
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


def patch_change_set_template_url() -> None:
    """Make moto's "no updates" check of CreateChangeSet read a TemplateURL's body (idempotent)."""
    from moto.cloudformation.responses import CloudFormationResponse

    original = CloudFormationResponse._validate_different_update
    if getattr(original, _PATCHED, False):
        return

    def _validate_different_update(self, incoming_params, stack_body, old_stack):
        url = self._get_param("TemplateURL")
        if not stack_body and url:
            try:
                stack_body = self._get_stack_from_s3_url(url)
            except AttributeError as exc:
                raise RuntimeError(f"moto's CloudFormation internals changed ({exc}): see "
                                   "standin/moto_fixes.py") from None
        return original(self, incoming_params, stack_body, old_stack)

    setattr(_validate_different_update, _PATCHED, True)
    CloudFormationResponse._validate_different_update = _validate_different_update
