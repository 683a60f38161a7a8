"""Root-cause analysis: pure rankers over metric arrays."""
