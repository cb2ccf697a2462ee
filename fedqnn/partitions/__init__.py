"""Distributed quantum neural operators across QPUs (issue 9), Flower-free cores.

See docs/partitions.md. Modules: ``channels`` (what a Werner pair does at a cut), ``circuit``
(partitioned simulation), ``model`` (the drop-in torch layer), ``accounting`` (Bell-pair demand
and round duration), ``schmidt`` (measured ranks and bounds), ``adaptive`` (rank rule),
``monitor`` (real-time adaptation), ``tasks`` (sub-circuits as placement tasks), ``federated``
(the config -> layer glue and the server's per-round planner used by ``fedqnn run``).
"""
