"""Stack parameters, checked here against the template before CloudFormation sees them.

CloudFormation would refuse most bad values too, but only after a round trip, with a message that
names no fix, and for some (a subnet outside the VPC) only half-way through creating resources.
"""

from __future__ import annotations

import ipaddress
import re

from deploy.errors import InvalidInput


def parse_assignments(pairs: list[str]) -> dict[str, str]:
    """`KEY=VALUE` arguments as a dict; InvalidInput for anything else."""
    values = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"--param takes KEY=VALUE, got {pair!r}")
        values[key] = value
    return values


def check(template: dict, given: dict[str, str]) -> dict[str, str]:
    """Validate `given` against the template's Parameters; return it (InvalidInput on the first fault)."""
    declared = template.get("Parameters", {})
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise InvalidInput(f"unknown parameter {', '.join(unknown)}; the template takes: "
                           f"{', '.join(sorted(declared))}")
    for name, value in given.items():
        _check_one(name, declared[name], value)
    merged = {name: str(spec.get("Default", "")) for name, spec in declared.items()}
    merged.update(given)
    _check_network(merged)
    return given


def _check_one(name: str, spec: dict, value: str) -> None:
    hint = f" ({spec['ConstraintDescription']})" if spec.get("ConstraintDescription") else ""
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            raise InvalidInput(f"parameter {name}={value!r} is not a number") from None
        low, high = spec.get("MinValue"), spec.get("MaxValue")
        if (low is not None and number < float(low)) or (high is not None and number > float(high)):
            raise InvalidInput(f"parameter {name}={value} is outside {low}..{high}")
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        raise InvalidInput(f"parameter {name}={value!r} is not one of {', '.join(map(str, allowed))}")
    pattern = spec.get("AllowedPattern")
    if pattern and not re.fullmatch(pattern, value):
        raise InvalidInput(f"parameter {name}={value!r} does not match {pattern}{hint}")
    if name.endswith("Cidr"):
        try:
            ipaddress.ip_network(value, strict=True)
        except ValueError as exc:
            raise InvalidInput(f"parameter {name}={value!r} is not a valid CIDR block: {exc}") from None


def _check_network(values: dict[str, str]) -> None:
    """Subnets inside the VPC and apart; an existing VPC comes with its subnets."""
    if values.get("ExistingVpcId"):
        subnets = [s for s in values.get("ExistingSubnetIds", "").split(",") if s.strip()]
        if len(subnets) < 2:
            raise InvalidInput("ExistingVpcId needs ExistingSubnetIds: two or more public subnets in "
                               "different availability zones")
        return
    try:
        vpc = ipaddress.ip_network(values["VpcCidr"], strict=True)
        subnets = [ipaddress.ip_network(values[k], strict=True) for k in ("SubnetACidr", "SubnetBCidr")]
    except (KeyError, ValueError):
        return  # reported by _check_one for the parameter that was given
    for key, subnet in zip(("SubnetACidr", "SubnetBCidr"), subnets, strict=True):
        if not subnet.subnet_of(vpc):
            raise InvalidInput(f"parameter {key}={subnet} is not inside VpcCidr={vpc}")
    if subnets[0].overlaps(subnets[1]):
        raise InvalidInput(f"SubnetACidr={subnets[0]} and SubnetBCidr={subnets[1]} overlap")
