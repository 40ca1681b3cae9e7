package loadtest

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"sort"
	"strconv"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// Image is a rendered plot.
type Image struct {
	Name  string // file name, e.g. latency-over-time.png
	Title string
	PNG   []byte
}

var palette = []color.Color{
	color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255},
	color.RGBA{214, 39, 40, 255}, color.RGBA{148, 103, 189, 255}, color.RGBA{140, 86, 75, 255},
}

type series struct {
	name string
	xys  plotter.XYs
}

func render(title, xlabel, ylabel string, lines []series, logY bool, tweak func(*plot.Plot)) ([]byte, error) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = xlabel
	p.Y.Label.Text = ylabel
	p.Add(plotter.NewGrid())
	p.Legend.Top = true
	p.Legend.Left = true
	p.Legend.XOffs = vg.Points(60)
	for i, s := range lines {
		if len(s.xys) == 0 {
			continue
		}
		l, err := plotter.NewLine(s.xys)
		if err != nil {
			return nil, err
		}
		l.Color = palette[i%len(palette)]
		l.Width = vg.Points(1.5)
		p.Add(l)
		p.Legend.Add(s.name, l)
	}
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = ticks125{}
	}
	if tweak != nil {
		tweak(p)
	}
	wt, err := p.WriterTo(8*vg.Inch, 4*vg.Inch, "png")
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	if _, err := wt.WriteTo(&buf); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// ticks125 labels a log axis at 1, 2 and 5 times powers of ten, falling back
// to evenly spaced ticks over a narrow range.
type ticks125 struct{}

func (ticks125) Ticks(lo, hi float64) []plot.Tick {
	var out []plot.Tick
	for e := math.Floor(math.Log10(lo)); math.Pow(10, e) <= hi; e++ {
		for _, m := range []float64{1, 2, 5} {
			if v := m * math.Pow(10, e); v >= lo && v <= hi {
				out = append(out, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'g', 4, 64)})
			}
		}
	}
	if len(out) < 3 {
		return plot.DefaultTicks{}.Ticks(lo, hi)
	}
	return out
}

// floor keeps values plottable on a log axis.
func floor(v float64) float64 { return math.Max(v, 0.001) }

// Plots renders the report's plots: latency percentiles over time,
// throughput over time, errors over time, the latency distribution, and for
// a sweep, throughput and latency against concurrency.
func Plots(r *Result) ([]Image, error) {
	var imgs []Image
	add := func(name, title string, png []byte, err error) error {
		if err != nil {
			return fmt.Errorf("plot %s: %w", name, err)
		}
		imgs = append(imgs, Image{Name: name, Title: title, PNG: png})
		return nil
	}
	var p50, p90, p99, pmax, ok, errs plotter.XYs
	codeSeries := map[string]plotter.XYs{}
	for _, w := range r.Windows {
		x := w.Start + r.WindowSecs
		if w.Requests > 0 {
			p50 = append(p50, plotter.XY{X: x, Y: floor(w.Latency.P50)})
			p90 = append(p90, plotter.XY{X: x, Y: floor(w.Latency.P90)})
			p99 = append(p99, plotter.XY{X: x, Y: floor(w.Latency.P99)})
			pmax = append(pmax, plotter.XY{X: x, Y: floor(w.Latency.Max)})
		}
		ok = append(ok, plotter.XY{X: x, Y: w.Throughput})
		errs = append(errs, plotter.XY{X: x, Y: float64(w.Errors) / r.WindowSecs})
	}
	for _, w := range r.Windows {
		for code := range w.Codes {
			codeSeries[code] = nil
		}
	}
	for code := range codeSeries {
		for _, w := range r.Windows {
			codeSeries[code] = append(codeSeries[code], plotter.XY{X: w.Start + r.WindowSecs, Y: float64(w.Codes[code]) / r.WindowSecs})
		}
	}
	png, err := render("Latency over time", "time (s)", "latency (ms)", []series{{"p50", p50}, {"p90", p90}, {"p99", p99}, {"max", pmax}}, true, nil)
	if err := add("latency-over-time.png", "Latency percentiles over time", png, err); err != nil {
		return nil, err
	}
	png, err = render("Throughput over time", "time (s)", "requests/s", []series{{"ok", ok}, {"errors", errs}}, false, nil)
	if err := add("throughput-over-time.png", "Throughput over time", png, err); err != nil {
		return nil, err
	}
	var errLines []series
	names := make([]string, 0, len(codeSeries))
	for code := range codeSeries {
		names = append(names, code)
	}
	sort.Strings(names)
	for _, code := range names {
		errLines = append(errLines, series{code, codeSeries[code]})
	}
	if len(errLines) == 0 {
		errLines = []series{{"no errors", errs}}
	}
	png, err = render("Errors over time", "time (s)", "errors/s by gRPC code", errLines, false, nil)
	if err := add("errors-over-time.png", "Errors over time, by gRPC code", png, err); err != nil {
		return nil, err
	}
	// Latency against percentile, on the 1/(1-q) scale that spreads the tail.
	var dist plotter.XYs
	for _, b := range r.Distribution {
		if b.Percentile >= 100 {
			continue
		}
		dist = append(dist, plotter.XY{X: 1 / (1 - b.Percentile/100), Y: floor(b.LatencyMS)})
	}
	png, err = render("Latency distribution", "percentile", "latency (ms)", []series{{"latency", dist}}, true, func(p *plot.Plot) {
		p.X.Scale = plot.LogScale{}
		p.X.Tick.Marker = plot.ConstantTicks{{Value: 1, Label: "0%"}, {Value: 2, Label: "50%"}, {Value: 10, Label: "90%"},
			{Value: 100, Label: "99%"}, {Value: 1000, Label: "99.9%"}, {Value: 10000, Label: "99.99%"}, {Value: 100000, Label: "99.999%"}}
	})
	if err := add("latency-distribution.png", "Latency distribution", png, err); err != nil {
		return nil, err
	}
	if len(r.Steps) > 0 {
		var thr, s50, s99 plotter.XYs
		for _, st := range r.Steps {
			c := float64(st.Concurrency)
			thr = append(thr, plotter.XY{X: c, Y: st.Throughput})
			s50 = append(s50, plotter.XY{X: c, Y: floor(st.Latency.P50)})
			s99 = append(s99, plotter.XY{X: c, Y: floor(st.Latency.P99)})
		}
		png, err = render("Throughput by concurrency", "concurrency", "requests/s", []series{{"throughput", thr}}, false, nil)
		if err := add("sweep-throughput.png", "Throughput by concurrency", png, err); err != nil {
			return nil, err
		}
		png, err = render("Latency by concurrency", "concurrency", "latency (ms)", []series{{"p50", s50}, {"p99", s99}}, true, nil)
		if err := add("sweep-latency.png", "Latency by concurrency", png, err); err != nil {
			return nil, err
		}
	}
	return imgs, nil
}

var reportTmpl = template.Must(template.New("report").Funcs(template.FuncMap{
	"ms":  fmtMS,
	"pct": func(v float64) string { return fmt.Sprintf("%.3g%%", v*100) },
	"f1":  func(v float64) string { return fmt.Sprintf("%.1f", v) },
	"uri": func(b []byte) template.URL {
		return template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b))
	},
}).Parse(`<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>loadtest: {{.R.Target}}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.3em 0.7em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
figure { margin: 1.5em 0; }
img { max-width: 100%; border: 1px solid #eee; }
.meta { color: #555; }
</style>
</head>
<body>
<h1>Load test of {{.R.Target}}</h1>
<p class="meta">{{.R.Description}}<br>started {{.R.Started.Format "2006-01-02 15:04:05 MST"}}; models: {{range $i, $m := .R.Models}}{{if $i}}, {{end}}{{$m}}{{end}}</p>
<h2>Summary</h2>
<table>
<tr><th>requests</th><th>ok</th><th>errors</th><th>error rate</th><th>throughput</th><th>inferences/s</th><th>sent/s</th><th>late sends</th></tr>
<tr><td>{{.R.Summary.Requests}}</td><td>{{.R.Summary.OK}}</td><td>{{.R.Summary.Errors}}</td><td>{{pct .R.Summary.ErrorRate}}</td><td>{{f1 .R.Summary.Throughput}}/s</td><td>{{f1 .R.Summary.Inferences}}</td><td>{{f1 .R.SendRate}}</td><td>{{.R.LateSends}}</td></tr>
</table>
<table>
<tr><th>latency</th><th>p50</th><th>p90</th><th>p95</th><th>p99</th><th>p99.9</th><th>max</th><th>mean</th></tr>
<tr><td>all</td><td>{{ms .R.Summary.Latency.P50}}</td><td>{{ms .R.Summary.Latency.P90}}</td><td>{{ms .R.Summary.Latency.P95}}</td><td>{{ms .R.Summary.Latency.P99}}</td><td>{{ms .R.Summary.Latency.P999}}</td><td>{{ms .R.Summary.Latency.Max}}</td><td>{{ms .R.Summary.Latency.Mean}}</td></tr>
{{range $m, $s := .R.PerModel}}<tr><td>{{$m}}</td><td>{{ms $s.Latency.P50}}</td><td>{{ms $s.Latency.P90}}</td><td>{{ms $s.Latency.P95}}</td><td>{{ms $s.Latency.P99}}</td><td>{{ms $s.Latency.P999}}</td><td>{{ms $s.Latency.Max}}</td><td>{{ms $s.Latency.Mean}}</td></tr>
{{end}}</table>
{{if .R.Summary.Codes}}<h2>Errors by gRPC code</h2>
<table><tr><th>code</th><th>count</th></tr>{{range $c, $n := .R.Summary.Codes}}<tr><td>{{$c}}</td><td>{{$n}}</td></tr>{{end}}</table>{{end}}
{{if .R.Steps}}<h2>Concurrency sweep</h2>
<table><tr><th>concurrency</th><th>req/s</th><th>p50</th><th>p90</th><th>p99</th><th>max</th><th>errors</th></tr>
{{range .R.Steps}}<tr><td>{{.Concurrency}}</td><td>{{f1 .Throughput}}</td><td>{{ms .Latency.P50}}</td><td>{{ms .Latency.P90}}</td><td>{{ms .Latency.P99}}</td><td>{{ms .Latency.Max}}</td><td>{{.Errors}}</td></tr>
{{end}}</table>{{end}}
<h2>Plots</h2>
{{range .Images}}<figure><img src="{{uri .PNG}}" alt="{{.Title}}" data-file="{{.Name}}" width="768" height="384"><figcaption>{{.Title}} ({{.Name}})</figcaption></figure>
{{end}}
</body>
</html>
`))

// WriteHTML writes a self-contained HTML report (plots embedded as PNG).
func WriteHTML(w io.Writer, r *Result, imgs []Image) error {
	return reportTmpl.Execute(w, struct {
		R      *Result
		Images []Image
	}{r, imgs})
}

// WriteReport writes into dir: report.html, report.json, report.csv and one
// PNG per plot. It returns the files written.
func WriteReport(dir string, r *Result) ([]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	imgs, err := Plots(r)
	if err != nil {
		return nil, err
	}
	var files []string
	write := func(name string, fn func(io.Writer) error) error {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			return err
		}
		if err := fn(f); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
		files = append(files, p)
		return nil
	}
	for _, img := range imgs {
		if err := write(img.Name, func(w io.Writer) error { _, err := w.Write(img.PNG); return err }); err != nil {
			return nil, err
		}
	}
	if err := write("report.json", func(w io.Writer) error { return WriteJSON(w, r) }); err != nil {
		return nil, err
	}
	if err := write("report.csv", func(w io.Writer) error { return WriteCSV(w, r) }); err != nil {
		return nil, err
	}
	if err := write("report.html", func(w io.Writer) error { return WriteHTML(w, r, imgs) }); err != nil {
		return nil, err
	}
	return files, nil
}
