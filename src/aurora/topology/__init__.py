"""The service topology: which service calls which, from configuration, series labels and traces.

``graph.ServiceGraph`` merges the sources and answers graph questions for the incident and root-cause
code; ``stage.TopologyStage`` reads edges from series labels in the pipeline; ``health`` rates each node.
"""

from aurora.topology.graph import ServiceGraph
from aurora.topology.stage import TopologyStage

__all__ = ["ServiceGraph", "TopologyStage"]
