"""Fitting: one streaming statistics pass, saliency, top-p selection, ranges mu ± tau·sigma,
quorums and LEACE, and the one path that turns them into gates."""
