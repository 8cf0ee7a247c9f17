"""The main job's fixed set: every check on every case, for each implementation under test.
A case outside the declaration is skipped (one not_checkable "declared" verdict says why)."""
import pytest

from properties.checks import GRADIENT_CHECKS, run_checks
from properties.fixed_cases import fixed_cases
from properties.strategies import skip_undeclared

CASES = fixed_cases()


@pytest.mark.parametrize("case_id", list(CASES))
def test_fixed_case(impl, impl_spec, record, case_id):
    case = CASES[case_id]
    skip_undeclared(impl, record, "declared", impl.capabilities.supports(case.spec),
                    spec=case.spec.to_dict(), case=case.describe())
    verdicts = [record(v) for v in run_checks(impl, case, GRADIENT_CHECKS, impl_ref=impl_spec)]
    bad = [v for v in verdicts if not v.ok]
    assert not bad, "\n".join(v.explain() for v in bad)
