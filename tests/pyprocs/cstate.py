"""A Cython-tier processor (a CProcessor subclass, written in Python) that does nothing but ask
for the largest private state per flow: the engine allocates it for every flow of its capacity."""
from flowos.cprocessor import CProcessor, MAX_STATE_SIZE


class LargeState(CProcessor):
    state_size = MAX_STATE_SIZE


class TooLargeState(CProcessor):
    """Asks for more private state per flow than the engine gives: refused as the configuration is read."""
    state_size = MAX_STATE_SIZE + 1
