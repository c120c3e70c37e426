"""The simulation core both envs step through: layout tables, state, the batched step.

``MultiAgentMicrogrids`` is the B = 1 view and ``VectorMicrogrids`` the B = N view of the
same definitions: the observation layout and cost terms (:mod:`.layout`), the info schema
(:mod:`.infos`) and stored energy (:mod:`.storage`) exist once, here.
"""
