// What a number counts: plain numbers, named so that a signature says which unit it takes.

/** A byte count or byte offset. Plain numbers are exact up to 8 PiB, far beyond any disk here. */
export type Bytes = number;
