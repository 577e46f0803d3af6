"""Pure billing decisions: pricing and proration, guardrails, the order state machine, sales credit.

Plain values in, plain values out: no litestar, no sqlalchemy, no clock reads.
"""
