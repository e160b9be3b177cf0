"""The tuner behind `nledit tune`: trials, their cheap cache, the study, the pick and the report."""
