package loadgen

import (
	"fmt"
	"image/color"
	"math"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
)

// modeColors gives each mode a fixed colour across charts.
var modeColors = map[string]color.RGBA{
	"aggregated": {R: 0x1f, G: 0x77, B: 0xb4, A: 0xff},
	"single":     {R: 0xd6, G: 0x27, B: 0x28, A: 0xff},
}

// WriteChart draws acknowledged trades/s over time, one line per mode, and
// saves it to path; the extension chooses the format (.png, .svg, .pdf).
// The y axis is logarithmic when the modes differ by more than 20x, so the
// slower mode stays visible.
func (r *Report) WriteChart(path string) error {
	p := plot.New()
	s := r.Settings
	p.Title.Text = fmt.Sprintf("Acknowledged trades/s: %d shards, %s", s.Shards, s.Endpoint)
	p.X.Label.Text = "seconds since the mode started"
	p.Y.Label.Text = "trades acknowledged per second"
	p.Legend.Top = true
	p.Legend.Left = true

	lo, hi := math.Inf(1), 0.0
	for _, m := range r.Modes {
		for _, v := range m.AckedSeries {
			if v > 0 {
				lo, hi = math.Min(lo, v), math.Max(hi, v)
			}
		}
	}
	logY := hi > 0 && hi/lo > 20
	if logY {
		p.Y.Scale = plot.LogScale{}
		p.Y.Tick.Marker = plot.LogTicks{Prec: -1}
		p.Y.Label.Text += " (log scale)"
	} else {
		p.Y.Min = 0
	}
	for _, m := range r.Modes {
		pts := make(plotter.XYs, 0, len(m.AckedSeries))
		for i, v := range m.AckedSeries {
			if logY && v < 1 {
				v = 1 // log scale: an empty interval shows at the bottom
			}
			pts = append(pts, plotter.XY{X: (float64(i) + 0.5) * m.IntervalSeconds, Y: v})
		}
		if len(pts) == 0 {
			continue
		}
		line, err := plotter.NewLine(pts)
		if err != nil {
			return fmt.Errorf("chart %s: %w", m.Mode, err)
		}
		if c, ok := modeColors[m.Mode]; ok {
			line.Color = c
		}
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("%s (%s trades/s over the run)", m.Mode, count(int64(m.AckedPerSec))), line)
	}
	p.Add(plotter.NewGrid())
	if err := p.Save(8*vg.Inch, 4*vg.Inch, path); err != nil {
		return fmt.Errorf("save chart %s: %w", path, err)
	}
	return nil
}
