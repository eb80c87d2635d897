package db

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strings"

	"github.com/jackc/pgx/v5"
)

// catalog is the part of a database's catalog that migrations define, read from
// pg_catalog: one map per kind of object, keyed by qualified name, holding what is
// compared. The deparsed definitions (pg_get_indexdef, pg_get_constraintdef,
// pg_get_triggerdef, pg_get_functiondef) are the server's own canonical text, so two
// databases built by the same DDL read the same, and the expected side's text is the
// SQL that restores the object.
type catalog struct {
	tables      map[string]string    // schema.table: its reloptions ("fillfactor=90")
	columns     map[string]columnDef // schema.table.column
	constraints map[string]namedDef  // schema.table.constraint
	indexes     map[string]indexDef  // schema.index
	triggers    map[string]triggerDef
	functions   map[string]namedDef // schema.name(args)
	enums       map[string][]string // schema.type: its labels in order
	extensions  map[string]string   // name: version
}

type columnDef struct {
	schema, table, name string
	num                 int
	typ                 string // format_type: "uuid", "numeric(14,6)", "vector"
	notNull             bool
	def                 string // default expression, "" = none
	generated           string // generation expression of a stored generated column
}

type namedDef struct {
	table string // schema.table for constraints, "" otherwise
	name  string // the object's own (quoted where needed) name
	def   string
}

type indexDef struct {
	table, name, def string
	valid            bool
}

type triggerDef struct {
	table, name, def string
	enabled          bool
}

// scope selects the objects of one schema whose names match a LIKE pattern:
// docpipe's whole schema, or River's river_* objects in the schema River uses.
type scope struct {
	schema, like string
}

func (s scope) String() string {
	if s.like == "%" {
		return "schema " + s.schema
	}
	return fmt.Sprintf("%s.%s", s.schema, strings.ReplaceAll(s.like, `\`, ""))
}

// The catalog queries. $1 is the schema, $2 the LIKE pattern on the table (or
// function, type) name. Extension-owned objects are left out: they belong to the
// extension, whose version is compared instead.
const (
	sqlTables = `
SELECT c.relname, coalesce(array_to_string(c.reloptions, ','), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname LIKE $2 AND c.relkind IN ('r', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')`

	sqlColumns = `
SELECT c.relname, a.attname, a.attnum, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       CASE WHEN a.attgenerated = '' THEN coalesce(pg_get_expr(d.adbin, d.adrelid), '') ELSE '' END,
       CASE WHEN a.attgenerated <> '' THEN coalesce(pg_get_expr(d.adbin, d.adrelid), '') ELSE '' END
FROM pg_attribute a
JOIN pg_class c ON c.oid = a.attrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE n.nspname = $1 AND c.relname LIKE $2 AND c.relkind IN ('r', 'p') AND a.attnum > 0 AND NOT a.attisdropped`

	// contype 'n' (NOT NULL constraints, PostgreSQL 18) repeats the columns' nullability.
	sqlConstraints = `
SELECT c.relname, con.conname, pg_get_constraintdef(con.oid)
FROM pg_constraint con
JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname LIKE $2 AND con.contype <> 'n'`

	// Indexes that back a primary key, unique or exclusion constraint are compared
	// as that constraint.
	sqlIndexes = `
SELECT t.relname, i.relname, pg_get_indexdef(i.oid), x.indisvalid
FROM pg_index x
JOIN pg_class i ON i.oid = x.indexrelid
JOIN pg_class t ON t.oid = x.indrelid
JOIN pg_namespace n ON n.oid = i.relnamespace
WHERE n.nspname = $1 AND t.relname LIKE $2
  AND NOT EXISTS (SELECT 1 FROM pg_constraint con
                  WHERE con.conindid = x.indexrelid AND con.conrelid = x.indrelid AND con.contype IN ('p', 'u', 'x'))`

	sqlTriggers = `
SELECT c.relname, tg.tgname, pg_get_triggerdef(tg.oid), tg.tgenabled <> 'D'
FROM pg_trigger tg
JOIN pg_class c ON c.oid = tg.tgrelid
JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = $1 AND c.relname LIKE $2 AND NOT tg.tgisinternal`

	sqlFunctions = `
SELECT p.proname || '(' || pg_get_function_identity_arguments(p.oid) || ')', pg_get_functiondef(p.oid)
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = $1 AND p.proname LIKE $2 AND p.prokind IN ('f', 'p')
  AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass AND d.objid = p.oid AND d.deptype = 'e')`

	sqlEnums = `
SELECT t.typname, array_agg(e.enumlabel::text ORDER BY e.enumsortorder)
FROM pg_type t
JOIN pg_enum e ON e.enumtypid = t.oid
JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE n.nspname = $1 AND t.typname LIKE $2
GROUP BY t.typname`

	sqlExtensions = `SELECT extname, extversion FROM pg_extension WHERE extname <> 'plpgsql'`
)

// inspect reads the catalog of scopes on conn. Run it with the same search_path on
// both sides: the deparsed text qualifies names that are not on the path.
func inspect(ctx context.Context, conn *pgx.Conn, scopes []scope) (*catalog, error) {
	c := &catalog{
		tables: map[string]string{}, columns: map[string]columnDef{}, constraints: map[string]namedDef{},
		indexes: map[string]indexDef{}, triggers: map[string]triggerDef{}, functions: map[string]namedDef{},
		enums: map[string][]string{}, extensions: map[string]string{},
	}
	for _, sc := range scopes {
		q := func(sql string, scan func(pgx.Rows) error) error {
			rows, err := conn.Query(ctx, sql, sc.schema, sc.like)
			if err != nil {
				return fmt.Errorf("read the catalog of %s: %w", sc, err)
			}
			defer rows.Close()
			for rows.Next() {
				if err := scan(rows); err != nil {
					return fmt.Errorf("read the catalog of %s: %w", sc, err)
				}
			}
			return rows.Err()
		}
		qual := func(name string) string { return sc.schema + "." + name }
		if err := q(sqlTables, func(r pgx.Rows) error {
			var name, options string
			err := r.Scan(&name, &options)
			c.tables[qual(name)] = options
			return err
		}); err != nil {
			return nil, err
		}
		if err := q(sqlColumns, func(r pgx.Rows) error {
			col := columnDef{schema: sc.schema}
			err := r.Scan(&col.table, &col.name, &col.num, &col.typ, &col.notNull, &col.def, &col.generated)
			c.columns[qual(col.table)+"."+col.name] = col
			return err
		}); err != nil {
			return nil, err
		}
		if err := q(sqlConstraints, func(r pgx.Rows) error {
			var table string
			var d namedDef
			err := r.Scan(&table, &d.name, &d.def)
			d.table = qual(table)
			c.constraints[d.table+"."+d.name] = d
			return err
		}); err != nil {
			return nil, err
		}
		if err := q(sqlIndexes, func(r pgx.Rows) error {
			var ix indexDef
			err := r.Scan(&ix.table, &ix.name, &ix.def, &ix.valid)
			ix.table = qual(ix.table)
			c.indexes[qual(ix.name)] = ix
			return err
		}); err != nil {
			return nil, err
		}
		if err := q(sqlTriggers, func(r pgx.Rows) error {
			var tg triggerDef
			err := r.Scan(&tg.table, &tg.name, &tg.def, &tg.enabled)
			tg.table = qual(tg.table)
			c.triggers[tg.table+"."+tg.name] = tg
			return err
		}); err != nil {
			return nil, err
		}
		if err := q(sqlFunctions, func(r pgx.Rows) error {
			var d namedDef
			err := r.Scan(&d.name, &d.def)
			c.functions[qual(d.name)] = d
			return err
		}); err != nil {
			return nil, err
		}
		if err := q(sqlEnums, func(r pgx.Rows) error {
			var name string
			var labels []string
			err := r.Scan(&name, &labels)
			c.enums[qual(name)] = labels
			return err
		}); err != nil {
			return nil, err
		}
	}
	rows, err := conn.Query(ctx, sqlExtensions)
	if err != nil {
		return nil, fmt.Errorf("read extensions: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var name, version string
		if err := rows.Scan(&name, &version); err != nil {
			return nil, fmt.Errorf("read extensions: %w", err)
		}
		c.extensions[name] = version
	}
	return c, rows.Err()
}

// Difference is one way the live schema differs from what the migrations produce.
type Difference struct {
	// Kind is table, column, constraint, index, trigger, function, type or extension.
	Kind string `json:"kind"`
	// Object is the object's qualified name (a column: schema.table.column; a
	// trigger or constraint: "name on schema.table").
	Object string `json:"object"`
	// Problem says what is wrong in words: "missing", "is text, expected uuid",
	// "differs", "not in the migrations".
	Problem string `json:"problem"`
	// SQL restores the expected object (or removes one the migrations do not make).
	SQL string `json:"sql"`
}

// String is the difference in words: "index upload_pipeline.ix_events_ts missing".
func (d Difference) String() string { return d.Kind + " " + d.Object + " " + d.Problem }

const (
	problemMissing    = "missing"
	problemUnexpected = "not in the migrations"
	problemDiffers    = "differs from the migrations"
)

var kindOrder = map[string]int{"extension": 0, "type": 1, "table": 2, "column": 3, "constraint": 4, "index": 5, "trigger": 6, "function": 7}

// compare lists how live differs from want, each difference with the SQL that
// restores want. A missing (or extra) table is one difference: its columns,
// constraints, indexes and triggers come with it.
func compare(live, want *catalog) []Difference {
	var out []Difference
	add := func(kind, object, problem, sql string) {
		out = append(out, Difference{Kind: kind, Object: object, Problem: problem, SQL: sql})
	}
	goneTable := map[string]bool{}

	for name, v := range want.extensions {
		got, ok := live.extensions[name]
		switch {
		case !ok:
			add("extension", name, problemMissing, fmt.Sprintf("CREATE EXTENSION IF NOT EXISTS %s VERSION %s;", ident(name), literal(v)))
		case got != v:
			add("extension", name, fmt.Sprintf("is version %s, expected %s", got, v), fmt.Sprintf("ALTER EXTENSION %s UPDATE TO %s;", ident(name), literal(v)))
		}
	}
	for key, w := range want.enums {
		l, ok := live.enums[key]
		switch {
		case !ok:
			add("type", key, problemMissing, fmt.Sprintf("CREATE TYPE %s AS ENUM (%s);", qualIdent(key), literals(w)))
		case !slices.Equal(l, w):
			add("type", key, fmt.Sprintf("has labels (%s), expected (%s)", literals(l), literals(w)), enumSQL(key, l, w))
		}
	}
	for key := range live.enums {
		if _, ok := want.enums[key]; !ok {
			add("type", key, problemUnexpected, fmt.Sprintf("DROP TYPE %s;", qualIdent(key)))
		}
	}
	for key, w := range want.tables {
		l, ok := live.tables[key]
		switch {
		case !ok:
			goneTable[key] = true
			add("table", key, problemMissing, createTableSQL(want, key))
		case l != w:
			sql := fmt.Sprintf("ALTER TABLE %s SET (%s);", qualIdent(key), w)
			if w == "" {
				sql = fmt.Sprintf("ALTER TABLE %s RESET (%s);", qualIdent(key), optionNames(l))
			}
			add("table", key, fmt.Sprintf("has storage options (%s), expected (%s)", l, w), sql)
		}
	}
	for key := range live.tables {
		if _, ok := want.tables[key]; !ok {
			goneTable[key] = true
			add("table", key, problemUnexpected, fmt.Sprintf("DROP TABLE %s;", qualIdent(key)))
		}
	}
	for key, w := range want.columns {
		table := w.schema + "." + w.table
		if goneTable[table] {
			continue
		}
		l, ok := live.columns[key]
		alter := "ALTER TABLE " + qualIdent(table) + " "
		col := ident(w.name)
		if !ok {
			add("column", key, problemMissing, alter+"ADD COLUMN "+columnSQL(w)+";")
			continue
		}
		if l.typ != w.typ {
			add("column", key, fmt.Sprintf("is %s, expected %s", l.typ, w.typ),
				fmt.Sprintf("%sALTER COLUMN %s TYPE %s USING %s::%s;", alter, col, w.typ, col, w.typ))
		}
		if l.notNull != w.notNull {
			if w.notNull {
				add("column", key, "is nullable, expected NOT NULL", alter+"ALTER COLUMN "+col+" SET NOT NULL;")
			} else {
				add("column", key, "is NOT NULL, expected nullable", alter+"ALTER COLUMN "+col+" DROP NOT NULL;")
			}
		}
		if l.generated != w.generated {
			add("column", key, fmt.Sprintf("is generated as %q, expected %q", l.generated, w.generated),
				alter+"DROP COLUMN "+col+", ADD COLUMN "+columnSQL(w)+";")
		} else if l.def != w.def {
			switch {
			case w.def == "":
				add("column", key, fmt.Sprintf("has default %s, expected none", l.def), alter+"ALTER COLUMN "+col+" DROP DEFAULT;")
			case l.def == "":
				add("column", key, fmt.Sprintf("has no default, expected %s", w.def), alter+"ALTER COLUMN "+col+" SET DEFAULT "+w.def+";")
			default:
				add("column", key, fmt.Sprintf("has default %s, expected %s", l.def, w.def), alter+"ALTER COLUMN "+col+" SET DEFAULT "+w.def+";")
			}
		}
	}
	for key, l := range live.columns {
		if _, ok := want.columns[key]; !ok && !goneTable[l.schema+"."+l.table] {
			add("column", key, problemUnexpected, fmt.Sprintf("ALTER TABLE %s DROP COLUMN %s;", qualIdent(l.schema+"."+l.table), ident(l.name)))
		}
	}
	for key, w := range want.constraints {
		if goneTable[w.table] {
			continue
		}
		l, ok := live.constraints[key]
		add1 := fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s;", qualIdent(w.table), ident(w.name), w.def)
		switch {
		case !ok:
			add("constraint", w.name+" on "+w.table, problemMissing, add1)
		case l.def != w.def:
			add("constraint", w.name+" on "+w.table, fmt.Sprintf("is %s, expected %s", l.def, w.def),
				fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s;\n", qualIdent(w.table), ident(w.name))+add1)
		}
	}
	for key, l := range live.constraints {
		if _, ok := want.constraints[key]; !ok && !goneTable[l.table] {
			add("constraint", l.name+" on "+l.table, problemUnexpected, fmt.Sprintf("ALTER TABLE %s DROP CONSTRAINT %s;", qualIdent(l.table), ident(l.name)))
		}
	}
	for key, w := range want.indexes {
		if goneTable[w.table] {
			continue
		}
		l, ok := live.indexes[key]
		switch {
		case !ok:
			add("index", key, problemMissing, w.def+";")
		case l.def != w.def:
			add("index", key, problemDiffers+": "+l.def, fmt.Sprintf("DROP INDEX %s;\n%s;", qualIdent(key), w.def))
		case !l.valid:
			add("index", key, "is invalid (a failed CREATE INDEX CONCURRENTLY?)", fmt.Sprintf("REINDEX INDEX %s;", qualIdent(key)))
		}
	}
	for key, l := range live.indexes {
		if _, ok := want.indexes[key]; !ok && !goneTable[l.table] {
			add("index", key, problemUnexpected, fmt.Sprintf("DROP INDEX %s;", qualIdent(key)))
		}
	}
	for key, w := range want.triggers {
		if goneTable[w.table] {
			continue
		}
		l, ok := live.triggers[key]
		object := w.name + " on " + w.table
		switch {
		case !ok:
			add("trigger", object, problemMissing, w.def+";")
		case l.def != w.def:
			add("trigger", object, problemDiffers+": "+l.def, fmt.Sprintf("DROP TRIGGER %s ON %s;\n%s;", ident(w.name), qualIdent(w.table), w.def))
		case l.enabled != w.enabled:
			add("trigger", object, "is disabled", fmt.Sprintf("ALTER TABLE %s ENABLE TRIGGER %s;", qualIdent(w.table), ident(w.name)))
		}
	}
	for key, l := range live.triggers {
		if _, ok := want.triggers[key]; !ok && !goneTable[l.table] {
			add("trigger", l.name+" on "+l.table, problemUnexpected, fmt.Sprintf("DROP TRIGGER %s ON %s;", ident(l.name), qualIdent(l.table)))
		}
	}
	for key, w := range want.functions {
		l, ok := live.functions[key]
		switch {
		case !ok:
			add("function", key, problemMissing, strings.TrimSpace(w.def)+";")
		case l.def != w.def:
			add("function", key, problemDiffers, strings.TrimSpace(w.def)+";")
		}
	}
	for key := range live.functions {
		if _, ok := want.functions[key]; !ok {
			schema, sig, _ := strings.Cut(key, ".")
			add("function", key, problemUnexpected, fmt.Sprintf("DROP FUNCTION %s.%s;", ident(schema), sig))
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Kind != out[j].Kind {
			return kindOrder[out[i].Kind] < kindOrder[out[j].Kind]
		}
		return out[i].Object < out[j].Object
	})
	return out
}

// enumSQL adds the expected labels a live enum lacks, each in its place. Labels
// the migrations do not have cannot be dropped in PostgreSQL; that needs a new type.
func enumSQL(key string, live, want []string) string {
	var b strings.Builder
	for i, label := range want {
		if slices.Contains(live, label) {
			continue
		}
		// After the label before it (present by now, added above if it was missing);
		// the first one before the first label the type has.
		where := ""
		if i > 0 {
			where = " AFTER " + literal(want[i-1])
		} else if j := slices.IndexFunc(want, func(w string) bool { return slices.Contains(live, w) }); j > 0 {
			where = " BEFORE " + literal(want[j])
		}
		fmt.Fprintf(&b, "ALTER TYPE %s ADD VALUE IF NOT EXISTS %s%s;\n", qualIdent(key), literal(label), where)
	}
	for _, label := range live {
		if !slices.Contains(want, label) {
			fmt.Fprintf(&b, "-- %s is not in the migrations; PostgreSQL cannot drop an enum label (recreate the type without it)\n", literal(label))
		}
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// createTableSQL rebuilds a missing table from the expected catalog: columns in
// order, then its constraints, indexes and triggers.
func createTableSQL(c *catalog, table string) string {
	var cols []columnDef
	for _, col := range c.columns {
		if col.schema+"."+col.table == table {
			cols = append(cols, col)
		}
	}
	sort.Slice(cols, func(i, j int) bool { return cols[i].num < cols[j].num })
	var b strings.Builder
	fmt.Fprintf(&b, "CREATE TABLE %s (", qualIdent(table))
	for i, col := range cols {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString("\n    " + columnSQL(col))
	}
	b.WriteString("\n)")
	if o := c.tables[table]; o != "" {
		fmt.Fprintf(&b, " WITH (%s)", o)
	}
	b.WriteString(";")
	var more []string
	for _, con := range c.constraints {
		if con.table == table {
			more = append(more, fmt.Sprintf("ALTER TABLE %s ADD CONSTRAINT %s %s;", qualIdent(table), ident(con.name), con.def))
		}
	}
	for _, ix := range c.indexes {
		if ix.table == table {
			more = append(more, ix.def+";")
		}
	}
	for _, tg := range c.triggers {
		if tg.table == table {
			more = append(more, tg.def+";")
		}
	}
	sort.Strings(more) // ADD CONSTRAINT before CREATE INDEX before CREATE TRIGGER
	for _, m := range more {
		b.WriteString("\n" + m)
	}
	return b.String()
}

func columnSQL(c columnDef) string {
	s := ident(c.name) + " " + c.typ
	if c.generated != "" {
		s += " GENERATED ALWAYS AS (" + c.generated + ") STORED"
	} else if c.def != "" {
		s += " DEFAULT " + c.def
	}
	if c.notNull {
		s += " NOT NULL"
	}
	return s
}

// optionNames turns "fillfactor=90,autovacuum_enabled=false" into "fillfactor, autovacuum_enabled".
func optionNames(opts string) string {
	var names []string
	for _, o := range strings.Split(opts, ",") {
		k, _, _ := strings.Cut(o, "=")
		names = append(names, k)
	}
	return strings.Join(names, ", ")
}

// ident quotes an identifier when it needs quotes (as quote_ident does), so the
// SQL reads like the server's own deparsed text.
func ident(s string) string {
	if plainIdent.MatchString(s) && !reserved[s] {
		return s
	}
	return pgx.Identifier{s}.Sanitize()
}

// qualIdent quotes "schema.name" as two identifiers.
func qualIdent(s string) string {
	schema, name, _ := strings.Cut(s, ".")
	return ident(schema) + "." + ident(name)
}

var plainIdent = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// reserved are PostgreSQL's reserved key words (they need quotes as names).
var reserved = map[string]bool{}

func init() {
	for _, w := range strings.Fields(`all analyse analyze and any array as asc asymmetric authorization binary both case cast
		check collate collation column concurrently constraint create cross current_catalog current_date current_role
		current_schema current_time current_timestamp current_user default deferrable desc distinct do else end except
		false fetch for foreign freeze from full grant group having ilike in initially inner intersect into is isnull join
		lateral leading left like limit localtime localtimestamp natural not notnull null offset on only or order outer
		overlaps placing primary references returning right select session_user similar some symmetric system_user table
		tablesample then to trailing true union unique user using variadic verbose when where window with`) {
		reserved[w] = true
	}
}

func literal(s string) string { return "'" + strings.ReplaceAll(s, "'", "''") + "'" }

func literals(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = literal(s)
	}
	return strings.Join(q, ", ")
}
