import { describe, expect, it } from 'vitest';
import {
  type Footprint,
  FootprintRecorder,
  FP_READ,
  FP_UPDATE,
  FP_WRITE,
  footprintsConflict,
  GLOBAL_FOOTPRINT,
} from './footprint.js';
import { bootKernel } from './testing.js';

const fp = (...objects: [string, number][]): Footprint => ({ global: false, objects: new Map(objects) });

describe('footprints conflict as the accesses they record', () => {
  it('two reads of one object do not conflict', () => {
    expect(footprintsConflict(fp(['a', FP_READ]), fp(['a', FP_READ]))).toBe(false);
  });
  it('two updates of one object commute', () => {
    expect(footprintsConflict(fp(['a', FP_UPDATE]), fp(['a', FP_UPDATE]))).toBe(false);
  });
  it('a read and an update of one object conflict, either way round', () => {
    expect(footprintsConflict(fp(['a', FP_READ]), fp(['a', FP_UPDATE]))).toBe(true);
    expect(footprintsConflict(fp(['a', FP_UPDATE]), fp(['a', FP_READ]))).toBe(true);
    expect(footprintsConflict(fp(['a', FP_READ | FP_UPDATE]), fp(['a', FP_UPDATE]))).toBe(true);
  });
  it('a write conflicts with every access of the same object', () => {
    for (const other of [FP_READ, FP_UPDATE, FP_WRITE])
      expect(footprintsConflict(fp(['a', FP_WRITE]), fp(['a', other]))).toBe(true);
  });
  it('steps on different objects are independent, whatever they do', () => {
    expect(footprintsConflict(fp(['a', FP_WRITE], ['b', FP_READ]), fp(['c', FP_WRITE]))).toBe(false);
  });
  it('a global footprint conflicts even with an empty one', () => {
    expect(footprintsConflict(GLOBAL_FOOTPRINT, fp())).toBe(true);
    expect(footprintsConflict(fp(), GLOBAL_FOOTPRINT)).toBe(true);
  });
});

describe('the recorder', () => {
  it('keeps the first task’s run apart from the runs that follow it in the step', () => {
    const k = bootKernel();
    const r = new FootprintRecorder();
    r.slice(k.init);
    r.touch('a', FP_READ);
    r.slice(k.init);
    r.touch('a', FP_UPDATE);
    r.slice(k.kthreadd);
    r.touch('b', FP_WRITE);
    const { all, own } = r.take();
    expect([...own.objects]).toEqual([['a', FP_READ | FP_UPDATE]]);
    expect([...all.objects]).toEqual([
      ['a', FP_READ | FP_UPDATE],
      ['b', FP_WRITE],
    ]);
    // and starts afresh
    r.slice(k.kthreadd);
    expect(r.take().all.objects.size).toBe(0);
  });
  it('a global mark makes the whole step global, and the first run too if it came first', () => {
    const k = bootKernel();
    const r = new FootprintRecorder();
    r.slice(k.init);
    r.touch('a', FP_READ);
    r.slice(k.kthreadd);
    r.global = true;
    const first = r.take();
    expect(first.all.global).toBe(true);
    expect(first.own.global).toBe(false);
    r.slice(k.init);
    r.global = true;
    r.slice(k.kthreadd);
    expect(r.take().own.global).toBe(true);
  });
});
