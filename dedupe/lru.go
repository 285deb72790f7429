package dedupe

// lru is a map with a recency list: get moves the entry to the front, and
// oldest returns the least recently added or got one. Entries embed node.
// The last entry got is cached, so that a run of records of one producer id
// or one shard costs a string comparison, not a map lookup.
type lru[T interface {
	comparable
	link() *node[T]
	key() string
}] struct {
	m          map[string]T
	head, tail T // most and least recently used; zero when empty
	last       T // the entry get returned last, zero if none
	lastKey    string
}

// node holds an entry's neighbours in the recency list.
type node[T any] struct {
	newer, older T
}

func (n *node[T]) link() *node[T] { return n }

func (l *lru[T]) init() { l.m = make(map[string]T) }

func (l *lru[T]) len() int { return len(l.m) }

// get returns the entry of key, or the zero T, and marks it most recent.
func (l *lru[T]) get(key string) T {
	var zero T
	if l.last != zero && l.lastKey == key {
		l.touch(l.last)
		return l.last
	}
	e, ok := l.m[key]
	if !ok {
		return zero
	}
	l.touch(e)
	l.last, l.lastKey = e, key
	return e
}

// touch moves e to the front.
func (l *lru[T]) touch(e T) {
	if l.head == e {
		return
	}
	l.unlink(e)
	l.pushFront(e)
}

// add inserts e under key at the front; key must be absent.
func (l *lru[T]) add(key string, e T) {
	l.m[key] = e
	l.pushFront(e)
	l.last, l.lastKey = e, key
}

// oldest returns the least recent entry, the zero T if empty.
func (l *lru[T]) oldest() T { return l.tail }

// remove deletes e, which is in the list.
func (l *lru[T]) remove(e T) {
	var zero T
	delete(l.m, e.key())
	l.unlink(e)
	if l.last == e {
		l.last, l.lastKey = zero, ""
	}
}

func (l *lru[T]) pushFront(e T) {
	var zero T
	n := e.link()
	n.newer, n.older = zero, l.head
	if l.head != zero {
		l.head.link().newer = e
	}
	l.head = e
	if l.tail == zero {
		l.tail = e
	}
}

func (l *lru[T]) unlink(e T) {
	var zero T
	n := e.link()
	if n.newer != zero {
		n.newer.link().older = n.older
	} else {
		l.head = n.older
	}
	if n.older != zero {
		n.older.link().newer = n.newer
	} else {
		l.tail = n.newer
	}
	n.newer, n.older = zero, zero
}
