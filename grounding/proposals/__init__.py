"""Proposal sources: the candidate boxes of an image (gt, detections, selective search, detector) that proposal-ranking methods score."""
