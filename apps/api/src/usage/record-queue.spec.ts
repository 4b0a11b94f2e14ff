import { RecordQueue } from './record-queue';

describe('RecordQueue', () => {
  it('is first in, first out across takes of any size', () => {
    const queue = new RecordQueue<number>();
    for (let i = 0; i < 10; i++) queue.push(i);
    expect(queue.take(3)).toEqual([0, 1, 2]);
    queue.push(10);
    expect(queue.length).toBe(8);
    expect(queue.take(100)).toEqual([3, 4, 5, 6, 7, 8, 9, 10]);
    expect(queue.length).toBe(0);
    expect(queue.take(5)).toEqual([]);
  });

  it('keeps order through compaction of a long consumed prefix', () => {
    const queue = new RecordQueue<number>();
    const taken: number[] = [];
    let next = 0;
    for (let round = 0; round < 50; round++) {
      for (let i = 0; i < 100; i++) queue.push(next++);
      taken.push(...queue.take(90));
    }
    taken.push(...queue.take(Infinity));
    expect(taken).toEqual(Array.from({ length: 5000 }, (_, i) => i));
  });

  it('clear() empties it', () => {
    const queue = new RecordQueue<string>();
    queue.push('a');
    queue.clear();
    expect(queue.length).toBe(0);
    expect(queue.take(1)).toEqual([]);
  });
});
