"""Learning and replay (SPEC "Learning and replay"): recorded operations, the decision of a
set of policies for each, and the policy a recording suggests."""
