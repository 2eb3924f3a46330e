"""The rules of recovery: intake, the six stages, assess, empower, approvals, staff work,
check-ins and the policy."""
